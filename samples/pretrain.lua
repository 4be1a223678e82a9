-- pretrain.lua - the default experiment: pretrain an AIM model (`tiny` on
-- Fashion-MNIST resized to 30x30 with patch 6, a budget of 900 000 images
-- (15 epochs) in bf16 where the CPU has AVX512_BF16, else fp32; flips
-- without crops) and print the test loss before and after. This is what `aim` with
-- no arguments shows in the TUI, and the same run as `aim train` with no
-- options: both take their options and defaults from one table (see
-- `aim options pretrain`), so
--
--   aim run samples/pretrain.lua -- epochs=2 lr=2e-3 out=runs/mine
--
-- trains exactly as `aim train --epochs 2 --lr 2e-3 --out runs/mine` does,
-- bit for bit. Every option of `aim train` is a key=value argument here
-- (preset, image, patch, limit, test_limit, seed, crop, val_every,
-- probe_every, recon_every, ckpt_minutes, resume=RUN ...). While it trains,
-- the validation loss, a live linear probe of every block and
-- reconstructions of a few test images go to the screen's panels. The run
-- folder gets run.json, metrics.jsonl, checkpoints and model.safetensors.
-- Without Debian's dataset-fashion-mnist it trains on the built-in
-- synthetic set and says so.
local aim = require "aim"

local a = aim.args(arg, aim.defaults "pretrain")

-- the model, the training split and the test split `aim train` would open
-- for these options, and the options aim.pretrain takes (with the test split
-- for validation, the live probe and the reconstruction panel)
local m, train, test, opts = assert(aim.experiment(a))
print(string.format("model: %s\ndata:  %s\ntest:  %s", tostring(m), tostring(train),
                    tostring(test)))

-- the test loss on (at most) the first 256 test images, every image with its
-- own prefix, drawn once (fixed)
local cfg = m:config()
local N = (cfg.image // cfg.patch) ^ 2 // 1
local eval = test or train
local x = eval:batch(1, math.min(#eval, 256))
local prefixes = {}
for i = 1, #x do prefixes[i] = 1 + (i * 7919) % (N - 1) end
local function test_loss()
    return m:loss(x, {prefix = prefixes})
end

local before = test_loss()
local r = assert(aim.pretrain(m, train, opts))
local after = test_loss()

aim.print_table({
    {what = "test loss (before)", value = before},
    {what = "test loss (after)", value = after},
    {what = "train loss (mean of last steps)", value = r.mean_loss},
    {what = "steps", value = r.steps},
    {what = "images / s", value = r.img_per_s},
    {what = "minutes", value = r.seconds / 60},
}, {{"what", "result"}, {"value", "value", function(v)
    return math.type(v) == "integer" and tostring(v) or string.format("%.4f", v)
end}})
print("weights: " .. r.weights)
