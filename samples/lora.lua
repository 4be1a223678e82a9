-- lora.lua - LoRA fine-tuning of a pretrained trunk, the paper's last row
-- (shared/AIM.md): adapters of rank r on q, v and proj of the probe blocks,
-- trained jointly with an attentive probe head while the trunk stays
-- frozen. With compare=true (the default) the frozen attentive probe of the
-- same blocks is trained first on the same images, so the gain LoRA brings
-- is measured by one script.
--
--   aim run samples/lora.lua [weights=FILE] [rank=8] [alpha=0 (= rank)]
--       [epochs=4] [lr=1e-3] [head_lr=3e-3] [wd=0.05] [batch=64]
--       [probe_blocks=3,4] [blocks= (adapted; default the probe blocks)]
--       [compare=true] [probe_epochs=15] [probe_lr=1e-2] [flip=false]
--       [augment=false] [precision=fp32] [train_limit=0 (all)]
--       [test_limit=0 (all)] [seed=0] [save=FILE] [save_adapters=FILE]
-- The defaults are the job's own (aim.defaults "lora", those of `aim lora`),
-- but for three: the frozen probe first (compare=true), the head on blocks
-- 3,4, and weights. weights defaults to the newest runs/*/model.safetensors
-- (what samples/pretrain.lua leaves).
local aim = require "aim"

local defaults = aim.defaults "lora"
defaults.weights, defaults.compare, defaults.probe_blocks = "", true, "3,4"
local a = aim.args(arg, defaults)

-- "3,4" -> {3, 4}, each block in 1..depth
local function block_list(key, s, depth)
    local out = {}
    for item in s:gmatch("[^,]+") do
        local b = math.tointeger(tonumber(item))
        if not b then
            error(string.format("argument %s=%s: a list of block numbers like 3,4 is expected", key, s), 0)
        end
        if b < 1 or b > depth then
            error(string.format("argument %s=%s: block %d is not in 1..%d (the trunk's depth)", key, s, b, depth), 0)
        end
        out[#out + 1] = b
    end
    if #out == 0 then
        error(string.format("argument %s=%s: a list of block numbers like 3,4 is expected", key, s), 0)
    end
    return out
end

-- the newest run folder's weights (run folders are runs/DATE-TIME-NAME)
local function newest_weights()
    local p = io.popen("ls -1d runs/*/model.safetensors 2>/dev/null")
    if not p then return nil end
    local newest
    for line in p:lines() do
        if not newest or line > newest then newest = line end
    end
    p:close()
    return newest
end

local weights = a.weights
if weights == "" then
    weights = newest_weights()
    if not weights then
        error("no weights: give weights=FILE, or run samples/pretrain.lua first "
              .. "(it leaves runs/DATE-pretrain-tiny/model.safetensors)", 0)
    end
    print("weights: " .. weights .. " (the newest run folder; give weights=FILE for another)")
end
local m, err = aim.load(weights)
if not m then error(err, 0) end
local cfg = m:config()
local probe_blocks = block_list("probe_blocks", a.probe_blocks, cfg.depth)
local blocks = a.blocks ~= "" and block_list("blocks", a.blocks, cfg.depth) or nil

local train = aim.data.default("train", {channels = cfg.channels, size = cfg.image,
                                         limit = a.train_limit > 0 and a.train_limit or nil, seed = a.seed})
local test = aim.data.default("test", {channels = cfg.channels, size = cfg.image,
                                       limit = a.test_limit > 0 and a.test_limit or nil, seed = a.seed})
print(string.format("model: %s\ndata:  %s\ntest:  %s", tostring(m), tostring(train), tostring(test)))
local label = table.concat(probe_blocks, ",")

local frozen, head
if a.compare then
    print(string.format("frozen attentive probe on blocks %s first (%d epochs, lr %g)", label, a.probe_epochs, a.probe_lr))
    local p = aim.probe(m, train, test, {blocks = probe_blocks, kind = "attentive", epochs = a.probe_epochs,
                                         lr = a.probe_lr, batch = math.min(256, #train), seed = a.seed})
    frozen = p.best
    head = p -- LoRA starts from this head (linear probing, then fine-tuning)
end

print(string.format("LoRA rank %d on blocks %s, head on blocks %s (%d epochs, lr %g, head lr %g)", a.rank,
                    blocks and table.concat(blocks, ",") or label, label, a.epochs, a.lr, a.head_lr))
local epochs = {}
local r, lerr = aim.lora(m, train, test, {rank = a.rank, alpha = a.alpha > 0 and a.alpha or nil, blocks = blocks,
                                    probe_blocks = probe_blocks, epochs = a.epochs, batch = a.batch,
                                    lr = a.lr, head_lr = a.head_lr, wd = a.wd, seed = a.seed, head = head,
                                    flip = a.flip, augment = a.augment, precision = a.precision,
                                    save = a.save ~= "" and a.save or nil,
                                    save_adapters = a.save_adapters ~= "" and a.save_adapters or nil,
                                    on_epoch = function(e) epochs[#epochs + 1] = e end})
if not r then error(lerr, 0) end
local pct = function(v) return string.format("%.2f", v) end
aim.print_table(epochs, {{"epoch", "epoch"}, {"loss", "train loss", function(v) return string.format("%.4f", v) end},
                         {"train_top1", "train top-1 %", pct}, {"test_top1", "test top-1 %", pct}})

local rows = {}
if frozen then
    rows[#rows + 1] = {what = "frozen attentive probe, blocks " .. frozen.label, top1 = frozen.test_top1,
                       trained = "the head", seconds = frozen.seconds}
end
rows[#rows + 1] = {what = string.format("LoRA r=%d on blocks %s, head on %s", r.rank,
                                        table.concat(r.blocks, ","), r.label),
                   top1 = r.test_top1, seconds = r.seconds,
                   trained = string.format("%d adapter values (%.2f%% of the trunk) + %d head",
                                           r.adapters, r.share, r.trainable - r.adapters)}
print()
aim.print_table(rows, {{"what", "model"}, {"top1", "test top-1 %", pct}, {"trained", "trained values"},
                       {"seconds", "seconds", function(v) return string.format("%.0f", v) end}})
if frozen then
    print(string.format("gain of LoRA over the frozen probe: %+.2f points (%.2f%% -> %.2f%%)",
                        r.test_top1 - frozen.test_top1, frozen.test_top1, r.test_top1))
end
if a.save ~= "" then
    print("saved trunk + adapters + head: " .. a.save)
end
