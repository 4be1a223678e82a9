#!/usr/bin/python3
"""aim_torch_check.py - cross-check `aim loss` against an independent PyTorch
implementation of shared/AIM.md (optional tool, not part of `make check`).

For a few small configurations it makes random weights (LayerNorm weights
around 1 and biases around 0, never exactly 1/0, so mix-ups show) and random
images, writes the weights as safetensors (pure Python) and the images as .npy,
runs

    aim loss WEIGHTS --images X.npy --prefix S --predictions P.npy

for several prefixes S and compares the printed loss (last stdout line) to
2e-5 relative and the predictions [B,N,P] to 2e-4 absolute against the
PyTorch reference (computed in float64). It also checks that S = 0 and S = N
are refused with a one-line `aim: ...` message. Prints a PASS/FAIL table and
exits non-zero if anything fails.

Uses only torch, numpy and the Python standard library:
    /usr/bin/python3 tests/ref/aim_torch_check.py [--aim ./aim] [--keep DIR]
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

LOSS_RTOL = 2e-5
PRED_ATOL = 2e-4

CONFIGS = [
    # name, C, image, patch, D, L, NH, Dh, Lh, norm_eps
    dict(name="C1-8px-p2", C=1, image=8, patch=2, D=16, L=2, NH=2, Dh=8, Lh=1, eps=1e-6),
    dict(name="C3-12px-p4", C=3, image=12, patch=4, D=24, L=2, NH=3, Dh=12, Lh=2, eps=1e-6),
    dict(name="C3-8px-p2-Lh0-eps.25", C=3, image=8, patch=2, D=16, L=1, NH=4, Dh=8, Lh=0,
         eps=0.25),
]


def dims(c):
    G = c["image"] // c["patch"]
    return G, G * G, c["patch"] * c["patch"] * c["C"]


# ------------------------------------------------------------------ weights
def make_weights(c, gen):
    """AIM.md names and shapes -> float32 tensors (dict keeps file order)."""
    D, Dh, C, p = c["D"], c["Dh"], c["C"], c["patch"]
    _, _, P = dims(c)
    w = {}

    def lin(name, *shape):
        fan_in = int(np.prod(shape[1:]))
        w[name] = torch.randn(*shape, generator=gen, dtype=torch.float64).div(
            math.sqrt(fan_in)).float()

    def gain(name, n):
        w[name] = (1 + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64)).float()

    def bias(name, n):
        w[name] = (0.2 * torch.randn(n, generator=gen, dtype=torch.float64)).float()

    lin("preprocessor.patchifier.proj.weight", D, C, p, p)
    bias("preprocessor.patchifier.proj.bias", D)
    gain("preprocessor.patchifier.norm.weight", D)
    bias("preprocessor.patchifier.norm.bias", D)
    for i in range(c["L"]):
        b = f"trunk.blocks.{i}."
        gain(b + "norm_1.weight", D)
        bias(b + "norm_1.bias", D)
        lin(b + "attn.qkv.weight", 3 * D, D)
        lin(b + "attn.proj.weight", D, D)
        gain(b + "norm_2.weight", D)
        bias(b + "norm_2.bias", D)
        lin(b + "mlp.fc1.weight", 4 * D, D)
        lin(b + "mlp.fc2.weight", D, 4 * D)
    gain("trunk.post_trunk_norm.weight", D)
    bias("trunk.post_trunk_norm.bias", D)
    lin("pixel_head.decoder_projection.weight", Dh, D)
    bias("pixel_head.decoder_projection.bias", Dh)
    for j in range(c["Lh"]):
        b = f"pixel_head.decoder_blocks.{j}."
        gain(b + "norm.weight", Dh)
        bias(b + "norm.bias", Dh)
        lin(b + "mlp.fc1.weight", 4 * Dh, Dh)
        lin(b + "mlp.fc2.weight", Dh, 4 * Dh)
    gain("pixel_head.decoder_norm.weight", Dh)
    bias("pixel_head.decoder_norm.bias", Dh)
    lin("pixel_head.decoder_pred.weight", P, Dh)
    bias("pixel_head.decoder_pred.bias", P)
    return w


def write_safetensors(path, tensors, metadata):
    """The safetensors format in plain Python: u64 LE header length, JSON
    header, data section (little-endian F32)."""
    header = {"__metadata__": metadata}
    blobs = []
    off = 0
    for name, t in tensors.items():
        b = t.detach().cpu().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def metadata(c):
    return {"image": str(c["image"]), "channels": str(c["C"]), "patch": str(c["patch"]),
            "width": str(c["D"]), "depth": str(c["L"]), "heads": str(c["NH"]),
            "head_width": str(c["Dh"]), "head_depth": str(c["Lh"]),
            "norm_eps": "%.9g" % c["eps"]}


# ---------------------------------------------------------------- reference
def sincos2d(E, G):
    """[N,E]: [sin(col*w), cos(col*w), sin(row*w), cos(row*w)], w_k = 10000^(-k/Q)."""
    Q = E // 4
    w = 10000.0 ** (-torch.arange(Q, dtype=torch.float64) / Q)
    n = torch.arange(G * G)
    row = (n // G).double()[:, None]
    col = (n % G).double()[:, None]
    return torch.cat([torch.sin(col * w), torch.cos(col * w),
                      torch.sin(row * w), torch.cos(row * w)], dim=1)


def reference(c, w, x, prefix):
    """float64 forward + loss from AIM.md. x [B,C,H,W], prefix [B] ints.
    Returns (loss, predictions [B,N,P], targets [B,N,P])."""
    w = {k: v.double() for k, v in w.items()}
    x = torch.as_tensor(x).double()
    B = x.shape[0]
    G, N, P = dims(c)
    D, Dh, NH, p, C, eps = c["D"], c["Dh"], c["NH"], c["patch"], c["C"], c["eps"]
    hd = D // NH

    def ln(t, name):
        return F.layer_norm(t, (t.shape[-1],), w[name + ".weight"], w[name + ".bias"], eps)

    # patch embedding: Conv2d(C, D, p, stride p) with bias, raster order, LN, + sin-cos
    t = F.conv2d(x, w["preprocessor.patchifier.proj.weight"],
                 w["preprocessor.patchifier.proj.bias"], stride=p)
    t = t.flatten(2).transpose(1, 2)  # [B,N,D], n = row*G + col
    t = ln(t, "preprocessor.patchifier.norm") + sincos2d(D, G)

    # prefix-causal mask: q may attend k iff k < S_b or k <= q
    S = torch.as_tensor(prefix).long()[:, None, None]
    q_i = torch.arange(N)[None, :, None]
    k_i = torch.arange(N)[None, None, :]
    allowed = (k_i < S) | (k_i <= q_i)  # [B,N,N]

    for i in range(c["L"]):
        b = f"trunk.blocks.{i}."
        h = ln(t, b + "norm_1")
        qkv = F.linear(h, w[b + "attn.qkv.weight"])  # rows [q; k; v]
        q, k, v = qkv.split(D, dim=-1)
        q, k, v = (z.reshape(B, N, NH, hd).transpose(1, 2) for z in (q, k, v))
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        a = torch.softmax(s, dim=-1) @ v  # [B,NH,N,hd]
        a = a.transpose(1, 2).reshape(B, N, D)
        t = t + F.linear(a, w[b + "attn.proj.weight"])
        h = ln(t, b + "norm_2")
        t = t + F.linear(F.gelu(F.linear(h, w[b + "mlp.fc1.weight"])), w[b + "mlp.fc2.weight"])
    t = ln(t, "trunk.post_trunk_norm")

    # pixel head, per token
    y = F.linear(t, w["pixel_head.decoder_projection.weight"],
                 w["pixel_head.decoder_projection.bias"]) + sincos2d(Dh, G)
    for j in range(c["Lh"]):
        b = f"pixel_head.decoder_blocks.{j}."
        y = y + F.linear(F.gelu(F.linear(ln(y, b + "norm"), w[b + "mlp.fc1.weight"])),
                         w[b + "mlp.fc2.weight"])
    y = ln(y, "pixel_head.decoder_norm")
    pred = F.linear(y, w["pixel_head.decoder_pred.weight"], w["pixel_head.decoder_pred.bias"])

    # targets: patch values in (py, px, c) order, unbiased variance + 1e-6
    tg = x.reshape(B, C, G, p, G, p).permute(0, 2, 4, 3, 5, 1).reshape(B, N, P)
    mean = tg.mean(-1, keepdim=True)
    var = tg.var(-1, unbiased=True, keepdim=True)
    tg = (tg - mean) / torch.sqrt(var + 1e-6)

    # row j-1 predicts patch j; only j >= S_b counts
    err = ((pred[:, :-1] - tg[:, 1:]) ** 2).mean(-1)  # [B,N-1], column m predicts j = m+1
    j = torch.arange(1, N)[None, :]
    valid = j >= torch.as_tensor(prefix).long()[:, None]
    loss = err[valid].mean()
    return loss.item(), pred.numpy(), tg.numpy()


# --------------------------------------------------------------------- aim
def run_aim(aim, wpath, xpath, S, ppath):
    cmd = [aim, "loss", wpath, "--images", xpath, "--prefix", str(S)]
    if ppath:
        cmd += ["--predictions", ppath]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--aim", default=os.path.join(root, "aim"), help="the aim binary")
    ap.add_argument("--keep", help="write the files into this folder and keep them")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--batch", type=int, default=3)
    args = ap.parse_args()

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(args.seed)
    work = args.keep or tempfile.mkdtemp(prefix="aimtorch.")
    os.makedirs(work, exist_ok=True)
    rows = []  # (config, check, aim value, reference value, error, ok)
    failed = 0

    for c in CONFIGS:
        G, N, P = dims(c)
        w = make_weights(c, gen)
        wpath = os.path.join(work, c["name"] + ".safetensors")
        write_safetensors(wpath, w, metadata(c))
        x = (0.8 * torch.randn(args.batch, c["C"], c["image"], c["image"], generator=gen,
                               dtype=torch.float64) + 0.1).float().numpy()
        xpath = os.path.join(work, c["name"] + ".images.npy")
        np.save(xpath, x)
        for S in sorted({1, 2, N // 2, N - 1}):
            ppath = os.path.join(work, f"{c['name']}.S{S}.pred.npy")
            want, wpred, _ = reference(c, w, x, [S] * args.batch)
            r = run_aim(args.aim, wpath, xpath, S, ppath)
            lines = r.stdout.strip().splitlines()
            if r.returncode != 0 or not lines:
                msg = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
                rows.append((c["name"], f"S={S} loss", "exit %d" % r.returncode, "%.9g" % want,
                             msg[:60], False))
                failed += 1
                continue
            try:
                got = float(lines[-1].split()[-1])
            except ValueError:
                got = float("nan")
            rel = abs(got - want) / abs(want)
            ok = rel <= LOSS_RTOL
            failed += not ok
            rows.append((c["name"], f"S={S} loss", "%.9g" % got, "%.9g" % want,
                         "rel %.2e" % rel, ok))
            try:
                pred = np.load(ppath)
                if pred.shape != (args.batch, N, P) or pred.dtype != np.float32:
                    raise ValueError(f"shape {pred.shape} dtype {pred.dtype}, "
                                     f"want {(args.batch, N, P)} float32")
                d = np.abs(pred.astype(np.float64) - wpred)
                dmax = float(np.nanmax(d)) if np.isfinite(d).all() else float("inf")
                ok = dmax <= PRED_ATOL
                where = np.unravel_index(int(np.argmax(d)), d.shape)
                rows.append((c["name"], f"S={S} predictions", "[%d,%d,%d]" % pred.shape,
                             "max|ref| %.3g" % np.abs(wpred).max(),
                             "abs %.2e at %s" % (dmax, tuple(int(i) for i in where)), ok))
            except Exception as ex:  # missing or malformed file
                ok = False
                rows.append((c["name"], f"S={S} predictions", "-", "-", str(ex)[:60], False))
            failed += not ok
        # prefixes out of range are errors with a one-line "aim: ..." message
        for S in (0, N):
            r = run_aim(args.aim, wpath, xpath, S, None)
            err = r.stderr.strip().splitlines()
            ok = (r.returncode != 0 and 0 < r.returncode < 128 and len(err) >= 1
                  and err[-1].startswith("aim:"))
            failed += not ok
            rows.append((c["name"], f"S={S} refused", "exit %d" % r.returncode, "non-zero",
                         (err[-1] if err else "(no message)")[:60], ok))

    widths = [max(len(str(r[k])) for r in rows + [("config", "check", "aim", "reference",
                                                     "error", True)]) for k in range(5)]
    head = ("config", "check", "aim", "reference", "error")
    print("  ".join(h.ljust(wd) for h, wd in zip(head, widths)) + "  result")
    for r in rows:
        print("  ".join(str(v).ljust(wd) for v, wd in zip(r[:5], widths)) + "  " +
              ("PASS" if r[5] else "FAIL"))
    print(f"{len(rows) - failed}/{len(rows)} checks passed "
          f"(loss rtol {LOSS_RTOL}, predictions atol {PRED_ATOL}); files in {work}")
    if not args.keep:
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)
    print("FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
