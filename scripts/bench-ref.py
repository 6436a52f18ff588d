"""Eval and sampling speed of the PyTorch reference Glow (for scripts/bench.ts --ref).

ref_glow.py itself only trains and prints train_img_per_s and test_bpd_2000. This helper imports its
model classes, loads the state ref_glow.py saved with --save, and times (1) test bpd over the first
--eval-n test images in batches of 250, exactly as ref_glow.py computes it, and (2) sampling, with an
inverse written here for ref_glow.py's layers (it has none); each after one warm-up batch, with
PyTorch's default float handling and again with denormals flushed. Prints one JSON line.
Usage: /usr/bin/python3 bench-ref.py --ref-script ref_glow.py --model model.pt [--threads 2]
"""
import argparse, importlib.util, json, math, os, time
import numpy as np
import torch, torch.nn.functional as F


def load_ref(path):
    spec = importlib.util.spec_from_file_location('ref_glow', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def unsqueeze(x):
    b, c4, h, w = x.shape
    c = c4 // 4
    # inverse of view(b, c, h, 2, w, 2).permute(0, 1, 3, 5, 2, 4)
    return x.view(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, h * 2, w * 2)


def reverse_steps(ref, steps, x):
    for m in reversed(list(steps)):
        if isinstance(m, ref.Coupling):
            a, yb = x.chunk(2, 1)
            h = m.net(a)
            shift, raw = h[:, 0::2], h[:, 1::2]
            x = torch.cat([a, yb / torch.sigmoid(raw + 2.0) - shift], 1)
        elif isinstance(m, ref.InvConvLU):
            w = m.P @ (m.L * m.lmask + m.eye) @ (m.U * m.lmask.T + torch.diag(m.sign * torch.exp(m.logs)))
            x = F.conv2d(x, torch.inverse(w).unsqueeze(2).unsqueeze(3))
        else:  # ActNorm
            x = x * torch.exp(-m.logs) - m.loc
    return x


def sample(ref, model, n, shape, temperature):
    c, h, w = shape
    shapes = []
    for i in range(len(model.levels)):
        c, h, w = c * 4, h // 2, w // 2
        shapes.append((c, h, w))
        if i < len(model.levels) - 1:
            c = c // 2
    x = None
    for i in reversed(range(len(model.levels))):
        lv = model.levels[i]
        c4, hh, ww = shapes[i]
        if lv.split:
            mean, logsd = lv.prior(x).chunk(2, 1)
            z = mean + torch.exp(logsd) * torch.randn_like(mean) * temperature
            x = torch.cat([x, z], 1)
        else:
            zeros = torch.zeros(n, c4, hh, ww)
            mean, logsd = lv.prior(zeros).chunk(2, 1)
            x = mean + torch.exp(logsd) * torch.randn_like(mean) * temperature
        x = unsqueeze(reverse_steps(ref, lv.steps, x))
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ref-script', required=True)
    ap.add_argument('--model', required=True)
    # bench.ts always passes the config's data.path; this default mirrors the configs' ${FLOW_DATA:-../data}.
    ap.add_argument('--data', default=os.path.join(os.environ.get('FLOW_DATA') or os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data'), 'fashion-mnist'))
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--eval-n', type=int, default=2000)
    ap.add_argument('--sample-n', type=int, default=500)
    ap.add_argument('--sample-batch', type=int, default=250)
    ap.add_argument('--temperature', type=float, default=0.7)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    ref = load_ref(a.ref_script)
    saved = torch.load(a.model, weights_only=False)
    args = saved['args']
    model = ref.Glow(1, args['levels'], args['depth'], args['width'])
    model.load_state_dict(saved['state'])
    for m in model.modules():
        if isinstance(m, ref.ActNorm):
            m.inited = True
    model.eval()
    te = ref.load_idx(a.data + '/t10k-images-idx3-ubyte.gz')
    to = lambda u8: torch.from_numpy(u8.astype(np.float32)).permute(0, 3, 1, 2) / 256.0 - 0.5
    xs = to(te[:a.eval_n]); xs = xs + torch.rand_like(xs) / 256.0

    def timed_eval():
        ref.bpd(model, xs[:250], 256)  # warm-up: oneDNN builds its primitives on the first call of a shape
        t0 = time.time()
        bpd = torch.cat([ref.bpd(model, xs[i:i + 250], 256) for i in range(0, a.eval_n, 250)]).mean().item()
        return a.eval_n / (time.time() - t0), bpd

    def timed_sampling():
        sample(ref, model, min(a.sample_batch, a.sample_n), (1, 28, 28), a.temperature)  # warm-up
        t0 = time.time()
        done = 0
        finite = True
        while done < a.sample_n:
            k = min(a.sample_batch, a.sample_n - done)
            s = sample(ref, model, k, (1, 28, 28), a.temperature)
            finite = finite and bool(torch.isfinite(s).all())
            done += k
        return a.sample_n / (time.time() - t0), finite

    with torch.no_grad():
        # PyTorch's defaults first (what ref_glow.py runs with), then with denormals flushed to zero:
        # a trained model's activations hold denormals that slow the CPU down several times.
        eval_speed, bpd = timed_eval()
        sample_speed, finite = timed_sampling()
        torch.set_flush_denormal(True)
        eval_ftz, _ = timed_eval()
        sample_ftz, _ = timed_sampling()
    print(json.dumps({
        'eval_img_per_s': eval_speed, 'test_bpd': bpd, 'sample_img_per_s': sample_speed, 'samples_finite': finite,
        'eval_img_per_s_flush_denormal': eval_ftz, 'sample_img_per_s_flush_denormal': sample_ftz,
        'threads': torch.get_num_threads(),
    }))


if __name__ == '__main__':
    main()
