#!/usr/bin/python3
"""torch_peer.py - aim against PyTorch on the same model, the same step and
the same CPU (optional tool, not part of `make check`).

It builds the identical AIM model of shared/AIM.md in PyTorch (float32,
nn.Linear / nn.LayerNorm / nn.GELU, Conv2d patch embedding as Apple's
ml-aim, prefix-causal attention, pixel head, normalised-pixel loss) and
times, for each preset:

  training  zero_grad, forward + loss, backward, clip_grad_norm_(1.0),
            AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.05 on matrices)
  forward   forward + loss under torch.inference_mode() (PyTorch's fastest
            forward; aim's forward also keeps the activations for backward)

in each precision asked for (--precision fp32,bf16: PyTorch's bf16 is one
torch.autocast("cpu", dtype=torch.bfloat16) around forward and loss, its
mixed precision as a user writes it; aim's is `aim bench --precision
bf16`), at 1 and 2 PyTorch threads, each in a fresh worker process (so every
process's peak RSS is its own), alternating with `aim bench` runs of the same
preset, batch and thread count so that machine drift hits both sides; the
order is reversed every round. It prints the medians over the rounds, aim's
ratio to PyTorch at its best thread count, aim's MFU (from `aim bench`) and
the peak RSS of each. Each side also reports its images per CPU-second and
the cores it actually got (CPU time / wall time): on a shared machine (Linux
autogroups give every session an equal share, whatever its thread count)
the wall-clock ratio depends on the other load, the per-CPU-second ratio
much less.

OPENBLAS_* and OMP_* environment variables are left as they are, for both.

    apt-get install python3-torch
    /usr/bin/python3 bench/torch_peer.py [--aim ./aim] [--presets tiny,small]
        [--batch 64] [--rounds 5] [--steps 6] [--torch-threads 1,2]
        [--aim-threads 2] [--precision fp32,bf16]
"""
import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import time

PRESETS = {
    # as src/model/model.c
    "tiny": dict(image=28, C=1, patch=4, D=192, L=6, NH=3, Dh=192, Lh=2, eps=1e-6),
    "small": dict(image=32, C=3, patch=4, D=384, L=8, NH=6, Dh=384, Lh=4, eps=1e-6),
    "micro": dict(image=8, C=3, patch=2, D=16, L=2, NH=2, Dh=8, Lh=1, eps=1e-6),
}


# ------------------------------------------------------------------ worker
def worker(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c = PRESETS[args.preset]
    G = c["image"] // c["patch"]
    N, P = G * G, c["patch"] * c["patch"] * c["C"]
    D, Dh, NH, eps = c["D"], c["Dh"], c["NH"], c["eps"]
    hd = D // NH
    B = args.batch

    def sincos2d(E):
        Q = E // 4
        w = 10000.0 ** (-torch.arange(Q, dtype=torch.float64) / Q)
        n = torch.arange(N)
        row = (n // G).double()[:, None]
        col = (n % G).double()[:, None]
        return torch.cat([torch.sin(col * w), torch.cos(col * w),
                          torch.sin(row * w), torch.cos(row * w)], dim=1).float()

    class LN(nn.LayerNorm):
        # PyTorch 1.13's CPU autocast leaves layer_norm off its fp32 list, and
        # layer_norm refuses a bf16 input with fp32 weights: cast the input
        # back, as autocast's fp32 policy would (a no-op in fp32)
        def forward(self, x):
            return super().forward(x.float())

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm_1 = LN(D, eps=eps)
            self.qkv = nn.Linear(D, 3 * D, bias=False)
            self.proj = nn.Linear(D, D, bias=False)
            self.norm_2 = LN(D, eps=eps)
            self.fc1 = nn.Linear(D, 4 * D, bias=False)
            self.fc2 = nn.Linear(4 * D, D, bias=False)
            self.act = nn.GELU()

        def forward(self, x, mask):
            Bx = x.shape[0]
            qkv = self.qkv(self.norm_1(x)).reshape(Bx, N, 3, NH, hd).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = torch.baddbmm(mask, q.reshape(Bx * NH, N, hd),
                              k.reshape(Bx * NH, N, hd).transpose(1, 2), alpha=hd ** -0.5)
            a = a.softmax(-1)
            y = torch.bmm(a, v.reshape(Bx * NH, N, hd)).reshape(Bx, NH, N, hd)
            x = x + self.proj(y.transpose(1, 2).reshape(Bx, N, D))
            return x + self.fc2(self.act(self.fc1(self.norm_2(x))))

    class HeadBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = LN(Dh, eps=eps)
            self.fc1 = nn.Linear(Dh, 4 * Dh, bias=False)
            self.fc2 = nn.Linear(4 * Dh, Dh, bias=False)
            self.act = nn.GELU()

        def forward(self, y):
            return y + self.fc2(self.act(self.fc1(self.norm(y))))

    class AIM(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(c["C"], D, c["patch"], stride=c["patch"])
            self.norm = LN(D, eps=eps)
            self.blocks = nn.ModuleList([Block() for _ in range(c["L"])])
            self.post_trunk_norm = LN(D, eps=eps)
            self.decoder_projection = nn.Linear(D, Dh)
            self.decoder_blocks = nn.ModuleList([HeadBlock() for _ in range(c["Lh"])])
            self.decoder_norm = LN(Dh, eps=eps)
            self.decoder_pred = nn.Linear(Dh, P)
            self.register_buffer("pos", sincos2d(D))
            self.register_buffer("pos_h", sincos2d(Dh))
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)

        def forward(self, x, prefix):
            Bx = x.shape[0]
            t = self.proj(x).flatten(2).transpose(1, 2)  # [B,N,D], raster order
            t = self.norm(t) + self.pos
            qi = torch.arange(N)[None, :, None]
            ki = torch.arange(N)[None, None, :]
            allowed = (ki < prefix[:, None, None]) | (ki <= qi)  # [B,N,N]
            mask = torch.zeros(Bx, N, N).masked_fill_(~allowed, float("-inf"))
            mask = mask[:, None].expand(Bx, NH, N, N).reshape(Bx * NH, N, N)
            for blk in self.blocks:
                t = blk(t, mask)
            t = self.post_trunk_norm(t)
            y = self.decoder_projection(t) + self.pos_h
            for blk in self.decoder_blocks:
                y = blk(y)
            return self.decoder_pred(self.decoder_norm(y))

    def targets(x):
        p = c["patch"]
        tg = x.reshape(B, c["C"], G, p, G, p).permute(0, 2, 4, 3, 5, 1).reshape(B, N, P)
        mean = tg.mean(-1, keepdim=True)
        var = tg.var(-1, unbiased=True, keepdim=True)
        return (tg - mean) / torch.sqrt(var + 1e-6)

    def loss_fn(pred, tg, prefix):
        err = ((pred[:, :-1] - tg[:, 1:]) ** 2).mean(-1)  # [B, N-1]
        valid = torch.arange(1, N)[None, :] >= prefix[:, None]
        return err[valid].mean()

    model = AIM()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    other = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt_kw = dict(lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    if args.foreach:
        opt_kw["foreach"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": other, "weight_decay": 0.0}], **opt_kw)
    x = torch.randn(B, c["C"], c["image"], c["image"])
    prefix = torch.randint(1, N, (B,))

    bf16 = args.precision == "bf16"

    def fwd_loss(tg):
        # autocast: the linear layers (and what PyTorch lists for bf16) in
        # bf16, the rest as it decides; the targets stay fp32
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return loss_fn(model(x, prefix), tg, prefix)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            tg = targets(x)
        loss = fwd_loss(tg)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    def fwd_step():
        with torch.inference_mode():
            return fwd_loss(targets(x))

    out = {}
    for name, fn in (("train", train_step), ("forward", fwd_step)):
        for _ in range(2):
            fn()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(args.steps):
            fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        out[name] = B * args.steps / wall
        out[name + "_cpu"] = B * args.steps / cpu   # images per CPU-second
        out[name + "_cores"] = cpu / wall          # cores the process got
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["threads"] = torch.get_num_threads()
    print(json.dumps(out))


# ------------------------------------------------------------------ driver
def run_torch(args, preset, threads, prec):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--preset", preset,
           "--threads", str(threads), "--batch", str(args.batch), "--steps", str(args.steps),
           "--precision", prec]
    if args.foreach:
        cmd.append("--foreach")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("torch worker failed:\n" + r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_aim(args, preset, threads, prec):
    cmd = [args.aim, "bench", "--json", "--preset", preset, "--batch", str(args.batch),
           "--threads", str(threads), "--steps", str(args.steps), "--precision", prec]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("aim bench failed:\n" + r.stdout + r.stderr)
    b = json.loads(r.stdout)
    # the peak the MFU is against: fp32 on oneDNN's matmul (fp32_gemm) uses dnnl_f32's
    peak = b["peak_flops_per_s"]
    if b.get("precision") == "fp32" and b.get("fp32_gemm") == "onednn" and "dnnl_f32" in b:
        peak = b["dnnl_f32"]["peak_flops_per_s"]
    out = {"peak": peak / 1e9, "rss_mb": b["peak_rss_bytes"] / 2**20,
           "gemm": b.get("fp32_gemm", "openblas") if b.get("precision") == "fp32" else "onednn"}
    for key, part in (("train", "training"), ("forward", "forward")):
        out[key] = b[part]["img_per_s"]
        out[key + "_mfu"] = 100 * b[part]["mfu"]
        out[key + "_cpu"] = b[part]["img_per_cpu_s"]
        out[key + "_cores"] = b[part]["cores"]
    return out


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--aim", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "aim"))
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--torch-threads", default="1,2")
    ap.add_argument("--aim-threads", default="2")
    ap.add_argument("--precision", default="fp32,bf16",
                    help="precisions to compare, each on both sides (fp32, bf16)")
    ap.add_argument("--foreach", action="store_true",
                    help="AdamW(foreach=True) in PyTorch")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--preset", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    presets = args.presets.split(",")
    tthreads = [int(t) for t in args.torch_threads.split(",")]
    athreads = [int(t) for t in args.aim_threads.split(",")]
    precs = args.precision.split(",")
    for q in precs:
        if q not in ("fp32", "bf16"):
            sys.exit(f"unknown precision {q} (fp32, bf16)")
    for p in presets:
        if p not in PRESETS:
            sys.exit(f"unknown preset {p}")
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_"))}
    print(f"torch_peer: presets {presets}, precisions {precs}, batch {args.batch}, {args.rounds} rounds of "
          f"{args.steps} timed steps; environment {env or '(no OPENBLAS_/OMP_ variables)'}")
    res = {}  # (preset, precision, side, threads) -> list of dicts
    for rnd in range(args.rounds):
        for p in presets:
            jobs = [(q, "torch", t) for q in precs for t in tthreads] + \
                   [(q, "aim", t) for q in precs for t in athreads]
            if rnd % 2:
                jobs.reverse()
            for q, side, t in jobs:
                r = run_torch(args, p, t, q) if side == "torch" else run_aim(args, p, t, q)
                res.setdefault((p, q, side, t), []).append(r)
                print(f"  round {rnd + 1} {p:5s} {q} {side:5s} {t} threads: train "
                      f"{r['train']:7.1f} img/s ({r['train_cores']:.2f} cores)  forward "
                      f"{r['forward']:7.1f} img/s ({r['forward_cores']:.2f} cores)  "
                      f"RSS {r['rss_mb']:6.0f} MB  load {os.getloadavg()[0]:.1f}", flush=True)

    print("\nmedians over %d rounds (batch %d); img/cpu-s = images per CPU-second of the "
          "process (all its threads), cores = CPU time / wall time; aim's MFU is against "
          "the peak of its precision's GEMM" % (args.rounds, args.batch))
    print(f"{'preset':6s} {'prec':4s} {'side':6s} {'thr':>3s} {'train img/s':>11s} "
          f"{'fwd img/s':>10s} {'train img/cpu-s':>15s} {'fwd img/cpu-s':>13s} {'cores':>5s} "
          f"{'RSS MB':>7s} {'train MFU':>9s} {'fwd MFU':>8s} {'peak GF/s':>9s}")
    for p in presets:
        for q in precs:
            for side, ths in (("torch", tthreads), ("aim", athreads)):
                for t in ths:
                    rs = res[(p, q, side, t)]
                    line = (f"{p:6s} {q:4s} {side:6s} {t:3d} "
                            f"{med([r['train'] for r in rs]):11.1f} "
                            f"{med([r['forward'] for r in rs]):10.1f} "
                            f"{med([r['train_cpu'] for r in rs]):15.1f} "
                            f"{med([r['forward_cpu'] for r in rs]):13.1f} "
                            f"{med([r['train_cores'] for r in rs]):5.2f} "
                            f"{med([r['rss_mb'] for r in rs]):7.0f}")
                    if side == "aim":
                        line += (f" {med([r['train_mfu'] for r in rs]):8.1f}% "
                                 f"{med([r['forward_mfu'] for r in rs]):7.1f}% "
                                 f"{med([r['peak'] for r in rs]):9.1f}")
                    print(line)

    def best_torch(p, q, key):
        t = max(tthreads, key=lambda t: med([r[key] for r in res[(p, q, "torch", t)]]))
        return t, med([r[key] for r in res[(p, q, "torch", t)]])

    print("\nratios aim / PyTorch at its best thread count (medians)")
    for p in presets:
        for q in precs:
            # aim in q against PyTorch in q, and, for aim's bf16, against PyTorch's fp32 too
            against = [q] + (["fp32"] if q == "bf16" and "fp32" in precs else [])
            for tq in against:
                for what in ("train", "forward"):
                    for unit, key in (("img/s", what), ("img/cpu-s", what + "_cpu")):
                        bt, tb = best_torch(p, tq, key)
                        for t in athreads:
                            a = med([r[key] for r in res[(p, q, "aim", t)]])
                            print(f"{p:6s} {what:8s} aim {q} {t} thr {a:7.1f} {unit} / torch "
                                  f"{tq} {bt} thr {tb:7.1f} {unit} = {a / tb:5.2f}x")
        if len(precs) == 2:
            for what in ("train", "forward"):
                for t in athreads:
                    f32 = med([r[what] for r in res[(p, "fp32", "aim", t)]])
                    b16 = med([r[what] for r in res[(p, "bf16", "aim", t)]])
                    print(f"{p:6s} {what:8s} aim bf16 / aim fp32, {t} thr: {b16:7.1f} / "
                          f"{f32:7.1f} img/s = {b16 / f32:5.2f}x")
        for q in precs:
            tr = min(med([r["rss_mb"] for r in res[(p, q, "torch", t)]]) for t in tthreads)
            for t in athreads:
                ar = med([r["rss_mb"] for r in res[(p, q, "aim", t)]])
                print(f"{p:6s} {q} peak RSS aim {t} threads {ar:.0f} MB, torch (smallest) "
                      f"{tr:.0f} MB")


if __name__ == "__main__":
    main()
