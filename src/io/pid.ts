// Whether a process id still names a running process: the lock (io/lock.ts) and the removal of
// killed saves' temp files (io/checkpoint.ts) ask the same question and must get the same answer.
import { readFileSync } from 'node:fs';

/** True when pid is a running process (ours or another user's); false for a dead one or a zombie. */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A killed process stays signalable as a zombie until its parent reaps it: it holds nothing.
    return !isZombie(pid);
  } catch (e) {
    // EPERM: it exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Linux: state 'Z' in /proc/<pid>/stat (field 3, after the parenthesised command name); false where there is no /proc. */
export function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const end = stat.lastIndexOf(')');
  return stat.slice(end + 2, end + 3) === 'Z';
}
