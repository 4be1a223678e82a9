-- short_run.lua - a short pretraining (with checkpoints and validation),
-- an attentive probe, a LoRA run saved and loaded, merge / unmerge: the
-- workload `make valgrind` runs under memcheck. Writes into the current
-- folder.
local aim = require "aim"
local tr = aim.data.synthetic{n = 64, channels = 1, size = 8, classes = 4}
local te = aim.data.synthetic{n = 32, channels = 1, size = 8, classes = 4, seed = 5}
local m = aim.model{preset = "micro", channels = 1, seed = 1}
aim.pretrain(m, tr, {steps = 3, batch = 8, out = "run", ckpt_every = 2, val = te, val_every = 2})
local p = aim.probe(m, tr, te, {epochs = 1, batch = 16, blocks = {1}})
local r = aim.lora(m, tr, te, {epochs = 1, batch = 16, rank = 2, probe_blocks = {1}, save = "l.safetensors"})
local m2 = aim.load("l.safetensors")
m2:merge_lora(); m2:unmerge_lora()
print(p.best.test_top1, r.test_top1)
