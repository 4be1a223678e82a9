-- finetune.lua - aim.finetune (full fine-tuning: the whole trunk up to the
-- deepest probe block with a new attentive head, layer-wise lr decay): its
-- result fields, what it trains and what it leaves as loaded, callbacks and
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
local D = base:config().width

local function maxdiff(a, b)
    local d = a - b
    return math.max(d:max(), -d:min())
end

-- ------------------------------------------------------------ aim.finetune
local m = assert(aim.load(BASE))
local before = {}
for _, name in ipairs{"preprocessor.patchifier.proj.weight", "trunk.blocks.0.mlp.fc1.weight",
                      "trunk.blocks.1.attn.qkv.weight", "trunk.post_trunk_norm.weight",
                      "pixel_head.decoder_pred.weight"} do
    before[name] = m:param(name)
end
local epochs, steps, busy = {}, 0, nil
local r = aim.finetune(m, tr, te, {epochs = 4, batch = 32, lr = 3e-3, head_lr = 1e-2, probe_blocks = {1},
                                   on_epoch = function(e)
                                       epochs[#epochs + 1] = e
                                       if not busy then busy = select(2, pcall(m.add_lora, m, {rank = 2})) end
                                   end,
                                   on_step = function() steps = steps + 1 end})
T.ok(r, "aim.finetune returns a result: " .. aim.format(r))
T.ok(r.epochs == 4 and r.steps == 4 * (300 // 32) and steps == r.steps and r.stopped == false and #epochs == 4,
     string.format("4 epochs of %d steps, on_step every step, on_epoch every epoch", 300 // 32))
T.ok(epochs[4].loss < epochs[1].loss and epochs[4].loss == r.loss,
     string.format("the loss falls: %.3f -> %.3f", epochs[1].loss, epochs[4].loss))
T.ok(epochs[4].test_top1 == r.test_top1 and r.test_top1 > 15 and r.test_top1 <= 100,
     string.format("the result is the last epoch's test top-1 and beats chance (%.1f%%)", r.test_top1))
T.ok(r.top_block == 1 and r.label == "1" and aim.format(r.probe_blocks) == "{1}", "probe block 1: block 1 is the top trained")
local embed_and_block1 = 0
for _, p in ipairs(m:params()) do
    if p.name:find("^preprocessor%.") or p.name:find("^trunk%.blocks%.0%.") then
        local n = 1
        for _, s in ipairs(p.shape) do n = n * s end
        embed_and_block1 = embed_and_block1 + n
    end
end
T.is(r.trained, embed_and_block1, "trained = the patch embedding + block 1's values")
T.ok(r.head > D and r.val_loss_start and r.val_loss and r.val_loss ~= r.val_loss_start,
     string.format("head values %d; the next-patch loss moved (%.4f -> %.4f)", r.head, r.val_loss_start or -1, r.val_loss or -1))
T.ok(type(busy) == "string" and busy:find("in use by a running job", 1, true), "the model refuses changes during the job")
T.ok(maxdiff(m:param("preprocessor.patchifier.proj.weight"), before["preprocessor.patchifier.proj.weight"]) > 0
     and maxdiff(m:param("trunk.blocks.0.mlp.fc1.weight"), before["trunk.blocks.0.mlp.fc1.weight"]) > 0,
     "the patch embedding and block 1 are trained")
T.ok(maxdiff(m:param("trunk.blocks.1.attn.qkv.weight"), before["trunk.blocks.1.attn.qkv.weight"]) == 0
     and maxdiff(m:param("trunk.post_trunk_norm.weight"), before["trunk.post_trunk_norm.weight"]) == 0
     and maxdiff(m:param("pixel_head.decoder_pred.weight"), before["pixel_head.decoder_pred.weight"]) == 0,
     "block 2 (above the probe block), the post norm and the pixel head stay as loaded")
local frozen = 0
for _, p in ipairs(m:params()) do if not p.trainable then frozen = frozen + 1 end end
T.is(frozen, 0, "after the job every tensor is trainable again")
T.is(m:lora(), nil, "no adapters")

-- ------------------------------------------------------------ determinism, save, out
local OUT, SAVE = T.path("runs/f"), T.path("ft.safetensors")
local ra = aim.finetune(aim.load(BASE), tr, te, {epochs = 2, batch = 32, seed = 3, val_images = 0})
local mb = aim.load(BASE)
local rb = aim.finetune(mb, tr, te, {epochs = 2, batch = 32, seed = 3, val_images = 0, save = SAVE, out = OUT, log_every = 3})
T.ok(ra.test_top1 == rb.test_top1 and ra.loss == rb.loss and ra.val_loss == nil,
     string.format("the same seed gives the same result (%.2f%%, loss %.5f); val_images = 0: no next-patch loss", rb.test_top1, rb.loss))
local saved = aim.load(SAVE)
T.ok(saved and maxdiff(saved:param("trunk.blocks.0.attn.qkv.weight"), mb:param("trunk.blocks.0.attn.qkv.weight")) == 0,
     "save = writes the fine-tuned trunk")
local log = T.read(OUT .. "/metrics.jsonl") or ""
local rjson = T.read(OUT .. "/run.json") or ""
local _, nsteps = log:gsub('"kind":"finetune_step"', "")
local _, nepochs = log:gsub('"kind":"finetune",', "")
T.ok(rjson:find('"kind":"finetune"', 1, true) and rjson:find('"layer_decay":0.75,', 1, true)
     and T.exists(OUT .. "/events.out.tfevents.aim"), "out = DIR: run.json (kind finetune, layer_decay) and the event file")
T.ok(nepochs == 2 and nsteps == rb.steps // 3, string.format("a finetune line per epoch (%d), a finetune_step line every 3 steps (%d)", nepochs, nsteps))

-- ------------------------------------------------------------ stopping
local r3 = aim.finetune(aim.load(BASE), tr, te, {epochs = 3, batch = 32,
                                                 on_step = function(s) if s.step == 3 then return "stop" end end})
T.ok(r3.stopped and r3.steps == 3 and r3.epochs == 1, "on_step returning \"stop\" ends it at that step")
local r4 = aim.finetune(aim.load(BASE), tr, te, {epochs = 3, batch = 32, on_epoch = function() return "stop" end})
T.ok(r4.stopped and r4.epochs == 1 and r4.steps == 300 // 32, "on_epoch returning \"stop\" ends it after that epoch")
T.raises("boom", "an error in on_epoch stops the job and is raised",
         function() aim.finetune(aim.load(BASE), tr, te, {epochs = 2, batch = 32, on_epoch = function() error("boom") end}) end)

-- ------------------------------------------------------------ errors
local m5 = aim.load(BASE)
T.raises("unknown option 'rank'", "a LoRA option is not a fine-tuning option", function() aim.finetune(m5, tr, te, {rank = 2}) end)
T.raises("did you mean 'layer_decay'", "a near miss is suggested", function() aim.finetune(m5, tr, te, {layer_dcay = 0.5}) end)
T.raises("option 'layer_decay'", "layer_decay 0", function() aim.finetune(m5, tr, te, {layer_decay = 0}) end)
T.raises("option 'label_smoothing'", "label_smoothing 1", function() aim.finetune(m5, tr, te, {label_smoothing = 1}) end)
T.raises("probe_blocks: block 9 is not in 1..2", "a probe block beyond the depth", function() aim.finetune(m5, tr, te, {probe_blocks = {9}}) end)
T.raises("fewer than one batch", "a batch larger than the training set", function() aim.finetune(m5, tr, te, {batch = 400}) end)
T.raises("bad argument #3", "no test set", function() aim.finetune(m5, tr) end)
local ml = aim.load(BASE)
ml:add_lora{rank = 2}
T.fails("LoRA adapters", "a model with adapters: nil, message", aim.finetune, ml, tr, te, {epochs = 1, batch = 32})
T.is(aim.defaults("finetune").layer_decay, 0.75, "aim.defaults \"finetune\": layer_decay 0.75")
T.done()
