// `flow doctor`: what this machine can run, and why not.
import { runDoctor, formatDoctor, gpuUsable } from '../backend/doctor.js';
import { printJson } from './common.js';
import { EXIT } from '../errors.js';

export async function doctorCommand(flags: { requireGpu?: boolean; json?: boolean }): Promise<number> {
  const report = await runDoctor();
  const gpu = gpuUsable(report);
  if (flags.json) printJson({ ...report, gpu_usable: gpu.ok, gpu_reason: gpu.reason });
  else process.stdout.write(formatDoctor(report) + '\n');
  if (flags.requireGpu && !gpu.ok) {
    process.stderr.write(`flow doctor: no usable GPU: ${gpu.reason}\n`);
    return EXIT.FAILURE;
  }
  return EXIT.OK;
}
