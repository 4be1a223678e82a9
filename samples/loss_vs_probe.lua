-- loss_vs_probe.lua - the paper's central plot, at small scale: does the
-- pretraining loss predict downstream quality? For every checkpoint of one
-- run folder (ckpt-STEP.safetensors; keep them all with `aim train
-- --ckpt-every N --keep 0`): the validation loss (the val_loss `aim train`
-- logs: the same images, prefixes and normalisation, so a checkpoint at a
-- validation step gives the logged number) and the top-1 of an attentive
-- probe trained on its frozen trunk (aim.probe, the middle blocks by
-- default). Prints a table and the Pearson correlation of the two, and
-- writes the plot (top-1 against loss) as a PNG.
--
--   aim run samples/loss_vs_probe.lua run=DIR [limit=3000] [test_limit=1000]
--       [probe_epochs=5] [blocks=] [val_limit=1000] [val_images=512]
--       [batch=256] [lr=1e-2] [out=DIR/loss_vs_probe.png]
--
-- limit / test_limit: training / test images of each probe (0: all);
-- val_limit / val_images: the run's --test-limit and --val-images (aim
-- train's defaults: 1000, 512). The data is the default experiment's
-- (Fashion-MNIST, or the synthetic set with a notice when it is not there).
local aim = require "aim"

local a = aim.args(arg, {run = "", limit = 3000, test_limit = 1000, probe_epochs = 5, blocks = "",
                         val_limit = 1000, val_images = 512, batch = 256, lr = 1e-2, out = ""})
if a.run == "" then
    error("give run=DIR: a run folder with checkpoints (aim train --ckpt-every N --keep 0)", 0)
end

-- the checkpoints, in step order
local function checkpoints(dir)
    local ls = assert(io.popen("ls -1 '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null"))
    local list = {}
    for name in ls:lines() do
        local step = name:match("^ckpt%-(%d+)%.safetensors$")
        if step then list[#list + 1] = {step = tonumber(step), path = dir .. "/" .. name} end
    end
    ls:close()
    table.sort(list, function(x, y) return x.step < y.step end)
    return list
end
local ckpts = checkpoints(a.run)
if #ckpts < 2 then
    error(string.format("%s: %d checkpoint(s) (ckpt-STEP.safetensors); a correlation needs at least 2: "
                        .. "train with --ckpt-every N --keep 0", a.run, #ckpts), 0)
end
if #ckpts < 6 then
    io.stderr:write(string.format("aim: note: only %d checkpoints; 6 or more make a better plot\n", #ckpts))
end

-- the run's seed draws the validation prefixes
local seed = 0
local info = io.open(a.run .. "/run.json")
if info then
    seed = tonumber(info:read("a"):match('"seed":(%d+)')) or 0
    info:close()
end

local blocks
if a.blocks ~= "" then
    blocks = {}
    for b in a.blocks:gmatch("[^,]+") do blocks[#blocks + 1] = math.tointeger(tonumber(b)) end
end

local first = assert(aim.load(ckpts[1].path))
local cfg = first:config()
first = nil
local shape = {channels = cfg.channels, size = cfg.image}
local function split(name, limit)
    return aim.data.default(name, {channels = shape.channels, size = shape.size,
                                   limit = limit > 0 and limit or nil})
end
local train = split("train", a.limit)
local test = split("test", a.test_limit)
local val = a.val_limit == a.test_limit and test or split("test", a.val_limit)
print(string.format("%s: %d checkpoints, %s; probe: %d training and %d test images, %d epochs",
                    a.run, #ckpts, string.format("D=%d L=%d", cfg.width, cfg.depth),
                    #train, #test, a.probe_epochs))

local rows, xs, ys = {}, {}, {}
local t_all = aim.clock()
for _, c in ipairs(ckpts) do
    local t0 = aim.clock()
    local m = assert(aim.load(c.path))
    local loss = aim.validation_loss(m, val, {images = a.val_images, seed = seed})
    local r = aim.probe(m, train, test, {blocks = blocks, epochs = a.probe_epochs, batch = a.batch,
                                         lr = a.lr, seed = seed})
    local row = {step = c.step, loss = loss, top1 = r.best.test_top1, blocks = r.best.label,
                 seconds = aim.clock() - t0}
    rows[#rows + 1] = row
    xs[#xs + 1], ys[#ys + 1] = loss, row.top1
    print(string.format("  step %-6d val loss %.4f  probe top-1 %6.2f%%  (%.0f s)", row.step, loss,
                        row.top1, row.seconds))
    m:close()
end

local function pearson(x, y)
    local n, mx, my = #x, 0, 0
    for i = 1, n do mx, my = mx + x[i] / n, my + y[i] / n end
    local sxy, sxx, syy = 0, 0, 0
    for i = 1, n do
        sxy = sxy + (x[i] - mx) * (y[i] - my)
        sxx = sxx + (x[i] - mx) ^ 2
        syy = syy + (y[i] - my) ^ 2
    end
    if sxx == 0 or syy == 0 then return 0 / 0 end
    return sxy / math.sqrt(sxx * syy)
end

aim.print_table(rows, {{"step", "step"}, {"loss", "val loss", "%.4f"}, {"top1", "probe top-1 %", "%.2f"},
                       {"blocks", "blocks"}, {"seconds", "seconds", "%.0f"}})
local rho = pearson(xs, ys)
local rho_text = rho == rho and string.format("%.3f", rho) or "undefined (one of them is constant)"
print(string.format("Pearson correlation (val loss, probe top-1): %s over %d checkpoints (%.0f s)",
                    rho_text, #rows, aim.clock() - t_all))

local out = a.out ~= "" and a.out or a.run .. "/loss_vs_probe.png"
local name = a.run:gsub("/+$", ""):match("([^/]+)$") or a.run
assert(aim.plot{path = out, title = "pretraining loss vs probe top-1",
                xlabel = "validation loss (next patch)", ylabel = "attentive probe top-1 (%)",
                series = {{x = xs, y = ys, label = rho == rho and string.format("%s (r = %.2f)", name, rho) or name}}})
print("plot: " .. out)
