-- lora.lua - LoRA from Lua: m:add_lora / m:lora / merge / unmerge /
-- save_lora / load_lora on a small pretrained trunk, and aim.lora (the
-- fine-tuning job): its result fields, the frozen trunk, callbacks and
-- "stop", saving, run folders (out), and argument errors.
package.path = (arg[0]:match("^(.*)/") or ".") .. "/?.lua;" .. package.path
local T = require "tap"
local aim = require "aim"

local tr = aim.data.synthetic{n = 300, channels = 3, size = 8, seed = 1}
local te = aim.data.synthetic{n = 120, channels = 3, size = 8, seed = 2}
local base = aim.model{preset = "micro", seed = 1}
aim.pretrain(base, tr, {steps = 20, batch = 16})
local BASE = T.path("base.safetensors")
assert(base:save(BASE))
local cfg = base:config()
local D, depth = cfg.width, cfg.depth
local trunk_values = base:nparams()
local x = te:batch(1, 16)
local function loss(m) return m:loss(x, {prefix = 5}) end

-- the largest |a - b| over two tensors' values
local function maxdiff(a, b)
    local d = a - b
    return math.max(d:max(), -d:min())
end
local function maxabs(t) return math.max(t:max(), -t:min()) end

-- ------------------------------------------------------------ m:add_lora
local m = assert(aim.load(BASE))
T.is(m:lora(), nil, "a model without adapters: m:lora() is nil")
local before = loss(m)
local li = m:add_lora{rank = 4, alpha = 8, blocks = {2}, seed = 3}
T.ok(li and li.rank == 4 and li.alpha == 8 and li.merged == false and #li.blocks == 1
     and li.blocks[1] == 2 and li.params == 6 * 4 * D, "add_lora returns the adapters: " .. aim.format(li))
T.is(aim.format(m:lora()), aim.format(li), "m:lora() describes them")
local names, shapes = {}, {}
for _, p in ipairs(m:params()) do
    if p.lora then
        names[#names + 1] = p.name
        shapes[#shapes + 1] = table.concat(p.shape, "x") .. (p.trainable and "" or " frozen")
    end
end
T.is(table.concat(names, " "), "trunk.blocks.1.attn.qkv.lora_A trunk.blocks.1.attn.qkv.lora_B "
     .. "trunk.blocks.1.attn.proj.lora_A trunk.blocks.1.attn.proj.lora_B", "m:params() lists the four adapters (AIM.md names)")
T.is(table.concat(shapes, " "), string.format("8x%d %dx4 4x%d %dx4", D, 2 * D, D, D), "shapes [2r,D] [2D,r] [r,D] [D,r], trainable")
T.near(loss(m), before, 1e-6, "B starts at zero: new adapters change nothing")
T.ok(maxabs(m:param("trunk.blocks.1.attn.qkv.lora_A")) > 0 and maxabs(m:param("trunk.blocks.1.attn.qkv.lora_B")) == 0,
     "A is random, B is zero")
T.raises("already has adapters", "a second add_lora", function() m:add_lora{rank = 2} end)
T.raises("option 'rank'", "rank 0", function() aim.load(BASE):add_lora{rank = 0} end)
T.raises("option 'rank'", "a rank above the width", function() aim.load(BASE):add_lora{rank = D + 1} end)
T.raises("numbered 1..2", "a block beyond the depth", function() aim.load(BASE):add_lora{blocks = {3}} end)
T.raises("unknown option 'rnak'", "an unknown add_lora option", function() aim.load(BASE):add_lora{rnak = 2} end)
local every = aim.load(BASE)
T.is(aim.format(every:add_lora{rank = 2}.blocks), "{1, 2}", "add_lora without blocks adapts every block")

-- ------------------------------------------------------------ aim.lora
local qkv0 = m:param("trunk.blocks.1.attn.qkv.weight")
local fc0 = m:param("trunk.blocks.0.mlp.fc1.weight")
local epochs, steps, busy = {}, 0, nil
local r = aim.lora(m, tr, te, {epochs = 5, batch = 32, lr = 1e-2, head_lr = 3e-2, probe_blocks = {1, 2},
                               on_epoch = function(e)
                                   epochs[#epochs + 1] = e
                                   if not busy then busy = select(2, pcall(m.add_lora, m, {rank = 2})) end
                               end,
                               on_step = function(s) steps = steps + 1 end})
T.ok(r, "aim.lora continues the model's adapters: " .. aim.format(r))
T.ok(r.rank == 4 and r.alpha == 8 and aim.format(r.blocks) == "{2}" and aim.format(r.probe_blocks) == "{1, 2}"
     and r.label == "1,2", "rank, alpha and adapted blocks are the model's; probe blocks as asked")
T.ok(r.epochs == 5 and r.steps == 5 * (300 // 32) and steps == r.steps and r.stopped == false,
     string.format("5 epochs of %d steps, on_step every step (%d calls)", 300 // 32, steps))
T.is(#epochs, 5, "on_epoch after every epoch")
T.ok(epochs[5].epoch == 5 and epochs[5].loss < epochs[1].loss and epochs[5].loss == r.loss,
     string.format("the loss falls: %.3f -> %.3f", epochs[1].loss, epochs[5].loss))
T.ok(r.test_top1 > 15 and r.test_top1 <= 100 and r.train_top1 > 15 and r.train_top1 <= 100,
     string.format("top-1 beats chance on 10 classes (test %.1f%%, train %.1f%%)", r.test_top1, r.train_top1))
T.ok(r.adapters == 6 * 4 * D and r.trunk == trunk_values and r.trainable > r.adapters,
     string.format("%d adapter values, %d trainable with the head, trunk %d", r.adapters, r.trainable, r.trunk))
T.near(r.share, 100 * r.adapters / r.trunk, 1e-9, string.format("share = adapters in %% of the trunk (%.2f%%)", r.share))
T.ok(r.share < 100 and r.seconds >= 0, "share below 100%")
T.ok(type(busy) == "string" and busy:find("in use by a running job", 1, true), "the model refuses changes during the job: " .. tostring(busy))
T.is(maxdiff(m:param("trunk.blocks.1.attn.qkv.weight"), qkv0), 0, "the trunk stays frozen (qkv of an adapted block)")
T.is(maxdiff(m:param("trunk.blocks.0.mlp.fc1.weight"), fc0), 0, "the trunk stays frozen (mlp)")
T.ok(maxabs(m:param("trunk.blocks.1.attn.qkv.lora_B")) > 0 and maxabs(m:param("trunk.blocks.1.attn.proj.lora_B")) > 0,
     "the adapters trained (B is no longer zero)")
local flags = {}
for _, p in ipairs(m:params()) do
    flags[p.lora and "lora" or "other"] = (flags[p.lora and "lora" or "other"] or "") .. (p.trainable and "T" or "F")
end
T.ok(not flags.lora:find("F") and not flags.other:find("F"),
     "after aim.lora every tensor is trainable again (the trunk is frozen for the job only)")

-- ------------------------------------------------------------ merge / unmerge
local unmerged = loss(m)
T.ok(math.abs(unmerged - before) > 1e-5, string.format("trained adapters change the model (loss %.6f -> %.6f)", before, unmerged))
T.ok(m:merge_lora() and m:lora().merged == true, "merge_lora")
T.near(loss(m), unmerged, 1e-4 * math.abs(unmerged), "merged gives the same loss as unmerged")
T.ok(maxdiff(m:param("trunk.blocks.1.attn.qkv.weight"), qkv0) > 0, "merging changes qkv")
T.raises("already merged", "merging twice", function() m:merge_lora() end)
T.fails("merged", "aim.lora on merged adapters", aim.lora, m, tr, te, {epochs = 1, batch = 32})
T.ok(m:unmerge_lora() and m:lora().merged == false, "unmerge_lora")
T.near(loss(m), unmerged, 1e-4 * math.abs(unmerged), "unmerged again: the same loss")
T.ok(maxdiff(m:param("trunk.blocks.1.attn.qkv.weight"), qkv0) < 1e-5, "unmerging restores qkv")
T.raises("not merged", "unmerging twice", function() m:unmerge_lora() end)
T.raises("no adapters", "merging without adapters", function() aim.load(BASE):merge_lora() end)

-- ------------------------------------------------------------ save_lora / load_lora
local AD = T.path("adapters.safetensors")
T.ok(m:save_lora(AD) == true, "save_lora")
local fresh = assert(aim.load(BASE))
T.ok(fresh:load_lora(AD) == true, "load_lora onto a fresh copy of the trunk")
T.is(aim.format(fresh:lora()), aim.format(m:lora()), "the same adapters: " .. aim.format(fresh:lora()))
T.near(loss(fresh), unmerged, 1e-6 * math.abs(unmerged), "and the same loss")
T.fails("already has adapters", "load_lora onto a model with adapters", fresh.load_lora, fresh, AD)
T.fails("no adapters", "save_lora without adapters", base.save_lora, base, T.path("none.safetensors"))
T.fails("no LoRA adapters", "load_lora of a file without adapters", aim.load(BASE).load_lora, aim.load(BASE), BASE)
T.fails("missing.safetensors", "load_lora of a missing file", aim.load(BASE).load_lora, aim.load(BASE), T.path("missing.safetensors"))
local other = aim.model{preset = "micro", width = 24, heads = 2}
T.fails("not this one", "load_lora onto another trunk", other.load_lora, other, AD)
T.write(T.path("corrupt.safetensors"), "\8\0\0\0\0\0\0\0{bad}   ")
T.fails("corrupt.safetensors", "load_lora of a corrupt file", aim.load(BASE).load_lora, aim.load(BASE), T.path("corrupt.safetensors"))

-- ------------------------------------------------------------ aim.lora from a trained head (LP-FT)
do
    local mh = assert(aim.load(BASE))
    local pr = aim.probe(mh, tr, te, {blocks = {2}, epochs = 3, batch = 32})
    local frozen = pr.best.test_top1
    -- one step at a tiny learning rate: the head it starts from decides the result
    local rh = aim.lora(mh, tr, te, {head = pr, epochs = 1, batch = 32, lr = 1e-9, head_lr = 1e-9})
    T.ok(rh and aim.format(rh.probe_blocks) == "{2}" and math.abs(rh.test_top1 - frozen) < 2,
         string.format("head = an aim.probe result: LoRA starts from that head and its blocks (%.1f%% -> %.1f%%)",
                       frozen, rh and rh.test_top1 or -1))
    local rn = aim.lora(assert(aim.load(BASE)), tr, te, {probe_blocks = {2}, epochs = 1, batch = 32, lr = 1e-9, head_lr = 1e-9})
    T.ok(rn.test_top1 < frozen - 5, string.format("... a new head at that rate is far below it (%.1f%%)", rn.test_top1))
    local lin = aim.probe(aim.load(BASE), tr, te, {blocks = {2}, kind = "linear", epochs = 1, batch = 32})
    local ok, err = aim.lora(aim.load(BASE), tr, te, {head = lin, epochs = 1, batch = 32})
    T.ok(ok == nil and tostring(err):find("does not fit", 1, true), "a linear probe as the head: nil, message: " .. tostring(err))
    T.raises("option 'head' must be", "head = a number raises", function() aim.lora(aim.load(BASE), tr, te, {head = 3}) end)
end

-- ------------------------------------------------------------ aim.lora on a model without adapters, saving
local m2 = assert(aim.load(BASE))
local SAVE, SAVEA = T.path("lora.safetensors"), T.path("lora-adapters.safetensors")
local r2 = aim.lora(m2, tr, te, {rank = 2, epochs = 2, batch = 32, augment = false, save = SAVE, save_adapters = SAVEA})
-- the default probe blocks are the middle ones, as aim.probe's: {1} of 2
T.ok(r2 and r2.rank == 2 and r2.alpha == 2 and aim.format(r2.blocks) == "{1}" and aim.format(r2.probe_blocks) == "{1}",
     "new adapters: alpha = rank, on the probe blocks (the middle ones by default): " .. aim.format(r2 and r2.blocks))
T.is(r2.adapters, 6 * 2 * D * 1, "adapters == 6 r D per adapted block")
T.is(m2:lora().params, r2.adapters, "the model keeps them")
local saved = aim.load(SAVE)
T.ok(saved and saved:lora() and saved:lora().rank == 2 and aim.format(saved:lora().blocks) == "{1}",
     "save= writes trunk + adapters + head; aim.load reads the adapters back")
T.near(saved and loss(saved) or 0, loss(m2), 1e-6, "the saved model gives the same loss")
local fa = aim.load(BASE)
T.ok(fa:load_lora(SAVEA) and fa:lora().params == r2.adapters, "save_adapters= writes the adapters alone")

-- ------------------------------------------------------------ out = DIR: a run folder as `aim lora --out`
local lout = T.path("runs/l")
local rl = aim.lora(aim.load(BASE), tr, te, {rank = 2, epochs = 2, batch = 32, out = lout, log_every = 3})
local llog = T.read(lout .. "/metrics.jsonl") or ""
local _, nsteps = llog:gsub('"kind":"lora_step"', "")
local _, nepochs = llog:gsub('"kind":"lora",', "")
local rjson = T.read(lout .. "/run.json") or ""
T.ok(rl and rjson:find('"kind":"lora"', 1, true) and rjson:find('"adapters":' .. rl.adapters .. ",", 1, true)
     and T.exists(lout .. "/events.out.tfevents.aim"), "out = DIR: run.json (kind, adapters) and the event file")
T.ok(nepochs == 2 and nsteps == rl.steps // 3,
     string.format("a lora line per epoch (%d), a lora_step line every log_every = 3 steps (%d of %d)", nepochs, nsteps, rl.steps))
local logged
for v in llog:gmatch('"kind":"lora",[^\n]-"test_top1":([%d.e+-]+)') do logged = tonumber(v) end
T.near(logged or -1, rl.test_top1, 1e-4, "the last lora line's test_top1 is the result's")
local pre = T.path("pre")
aim.pretrain(aim.model{preset = "micro", seed = 2}, tr, {steps = 2, batch = 16, out = pre})
local pre_json = T.read(pre .. "/run.json")
T.fails("pretraining run", "out = a pretraining run's folder is refused", aim.lora, aim.load(BASE), tr, te, {epochs = 1, batch = 32, out = pre})
T.ok(T.read(pre .. "/run.json") == pre_json and not (T.read(pre .. "/metrics.jsonl") or ""):find("lora", 1, true),
     "... and left as it was")
T.raises("option 'log_every'", "log_every = 0 raises", function() aim.lora(aim.load(BASE), tr, te, {log_every = 0}) end)

-- ------------------------------------------------------------ stopping
local calls = 0
local r3 = aim.lora(aim.load(BASE), tr, te, {rank = 3, epochs = 3, batch = 32, blocks = {1, 2}, probe_blocks = {2},
                                             on_epoch = function(e) calls = calls + 1; return "stop" end})
T.ok(r3.stopped and r3.epochs == 1 and r3.steps == 300 // 32 and calls == 1, "on_epoch returning \"stop\" ends the job after that epoch")
T.ok(r3.adapters == 6 * 3 * D * 2 and aim.format(r3.blocks) == "{1, 2}" and r3.label == "2",
     "blocks and probe_blocks are independent; adapters == 6 r D per adapted block: " .. r3.adapters)
local r4 = aim.lora(aim.load(BASE), tr, te, {rank = 2, epochs = 3, batch = 32,
                                             on_step = function(s) if s.step == 3 then return "stop" end end})
T.ok(r4.stopped and r4.steps == 3 and r4.epochs == 1, "on_step returning \"stop\" ends it at that step")
local r5 = aim.lora(aim.load(BASE), tr, te, {rank = 2, epochs = 3, batch = 32,
                                             on_step = function(s) if s.step == 2 then aim.stop() end end})
T.ok(r5.stopped and r5.steps == 2, "stop() (the console's) ends the job after the current step")
T.raises("boom", "an error in on_epoch stops the job and is raised",
         function() aim.lora(aim.load(BASE), tr, te, {epochs = 2, batch = 32, on_epoch = function() error("boom") end}) end)
T.raises("bang", "an error in on_step too",
         function() aim.lora(aim.load(BASE), tr, te, {epochs = 2, batch = 32, on_step = function() error("bang") end}) end)

-- ------------------------------------------------------------ argument errors
local m5 = aim.load(BASE)
T.raises("unknown option 'rnak'", "an unknown option", function() aim.lora(m5, tr, te, {rnak = 4}) end)
T.raises("did you mean 'head_lr'", "a near miss is suggested", function() aim.lora(m5, tr, te, {headlr = 1}) end)
T.raises("option 'rank'", "rank 0", function() aim.lora(m5, tr, te, {rank = 0}) end)
T.raises("option 'rank'", "a fractional rank", function() aim.lora(m5, tr, te, {rank = 2.5}) end)
T.raises("blocks: block 9 is not in 1..2", "an adapted block beyond the depth", function() aim.lora(m5, tr, te, {blocks = {9}}) end)
T.raises("option 'probe_blocks'", "probe_blocks not a list", function() aim.lora(m5, tr, te, {probe_blocks = "x"}) end)
T.raises("option 'probe_blocks' has x, not a block number", "a probe block that is not a number", function() aim.lora(m5, tr, te, {probe_blocks = {"x"}}) end)
T.raises("option 'epochs'", "epochs 0", function() aim.lora(m5, tr, te, {epochs = 0}) end)
T.raises("option 'lr'", "a negative lr", function() aim.lora(m5, tr, te, {lr = -1}) end)
T.raises("option 'augment'", "augment not a boolean", function() aim.lora(m5, tr, te, {augment = "yes"}) end)
T.raises("option 'flip'", "flip not a boolean", function() aim.lora(m5, tr, te, {flip = 1}) end)
T.raises("option 'on_epoch' must be a function", "on_epoch not a function", function() aim.lora(m5, tr, te, {on_epoch = 5}) end)
T.raises("fewer than one batch", "a batch larger than the training set", function() aim.lora(m5, tr, te, {batch = 400}) end)
T.raises("bad argument #1", "no model", function() aim.lora(nil, tr, te) end)
T.raises("bad argument #3", "no test set", function() aim.lora(m5, tr) end)
local small = aim.data.synthetic{n = 64, channels = 1, size = 8}
T.raises("the data is 1x8x8", "data of the wrong shape", function() aim.lora(m5, small, te) end)
T.is(m5:lora(), nil, "a refused call leaves the model without adapters")
T.done()
