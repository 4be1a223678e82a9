-- loss_vs_probe.lua - the paper's central plot, at small scale: does the
-- pretraining loss predict downstream quality? For every checkpoint of one
-- or more run folders (ckpt-STEP.safetensors; keep them all with `aim
-- train --ckpt-every N --keep 0`, or the widths of samples/scaling.lua
-- with out=DIR): the validation loss (the val_loss `aim train` logs: the
-- same images, prefixes and normalisation, so a checkpoint at a validation
-- step gives the logged number; always in fp32, so a bf16 run logged its
-- own precision's, about 0.2% higher) and the top-1 of an attentive probe
-- trained on its frozen trunk (aim.probe, the middle blocks by default).
-- Prints a table and the Pearson correlation of the two (per run and, with
-- several runs, over all points), and writes the plot (top-1 against loss,
-- a series per run) as a PNG. On the workbench (aim tui) the plot grows
-- point by point in the figure view (f: the figure / the loss curve).
--
--   aim run samples/loss_vs_probe.lua run=DIR[,DIR...] [limit=3000]
--       [test_limit=1000] [probe_epochs=5] [blocks=] [val_limit=1000]
--       [val_images=512] [batch=256] [lr=1e-2] [out=DIR/loss_vs_probe.png]
--
-- limit / test_limit: training / test images of each probe (0: all);
-- val_limit / val_images: the runs' --test-limit and --val-images (aim
-- train's defaults: 1000, 512). The data is the default experiment's
-- (Fashion-MNIST, or the synthetic set with a notice when it is not there).
local aim = require "aim"

local a = aim.args(arg, {run = "", limit = 3000, test_limit = 1000, probe_epochs = 5, blocks = "",
                         val_limit = 1000, val_images = 512, batch = 256, lr = 1e-2, out = ""})
if a.run == "" then
    error("give run=DIR: a run folder with checkpoints (aim train --ckpt-every N --keep 0); "
          .. "several: run=DIR1,DIR2", 0)
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

-- each run: its folder, name, checkpoints and seed (which draws the validation prefixes)
local runs = {}
for dir in a.run:gmatch("[^,]+") do
    local run = {dir = dir, name = dir:gsub("/+$", ""):match("([^/]+)$") or dir,
                 ckpts = checkpoints(dir), seed = 0, xs = {}, ys = {}}
    if #run.ckpts < 2 then
        error(string.format("%s: %d checkpoint(s) (ckpt-STEP.safetensors); a correlation needs at "
                            .. "least 2: train with --ckpt-every N --keep 0", dir, #run.ckpts), 0)
    end
    if #run.ckpts < 6 then
        io.stderr:write(string.format("aim: note: %s: only %d checkpoints; 6 or more make a better "
                                      .. "plot\n", dir, #run.ckpts))
    end
    local info = io.open(dir .. "/run.json")
    if info then
        run.seed = tonumber(info:read("a"):match('"seed":(%d+)')) or 0
        info:close()
    end
    runs[#runs + 1] = run
end

local blocks
if a.blocks ~= "" then
    blocks = {}
    for b in a.blocks:gmatch("[^,]+") do blocks[#blocks + 1] = math.tointeger(tonumber(b)) end
end

-- the data, once, for the first checkpoint's image shape (every run must share it)
local function config_of(path)
    local m = assert(aim.load(path))
    local c = m:config()
    m:close()
    return c
end
local cfg = config_of(runs[1].ckpts[1].path)
for i = 2, #runs do
    local c = config_of(runs[i].ckpts[1].path)
    if c.channels ~= cfg.channels or c.image ~= cfg.image then
        error(string.format("%s takes %dx%dx%d images but %s takes %dx%dx%d: one plot needs one "
                            .. "data set", runs[i].dir, c.channels, c.image, c.image, runs[1].dir,
                            cfg.channels, cfg.image, cfg.image), 0)
    end
end
local function split(name, limit)
    return aim.data.default(name, {channels = cfg.channels, size = cfg.image,
                                   limit = limit > 0 and limit or nil})
end
local train = split("train", a.limit)
local test = split("test", a.test_limit)
local val = a.val_limit == a.test_limit and test or split("test", a.val_limit)
local nck = 0
for _, run in ipairs(runs) do nck = nck + #run.ckpts end
print(string.format("%s: %d checkpoints; probe: %d training and %d test images, %d epochs",
                    #runs == 1 and runs[1].dir or #runs .. " runs", nck, #train, #test,
                    a.probe_epochs))

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

local title = "pretraining loss vs probe top-1"
local xlabel, ylabel = "validation loss (next patch)", "attentive probe top-1 (%)"
-- the figure's series so far: one per run that has points, labelled by label_of(run)
local function series(label_of)
    local out = {}
    for _, run in ipairs(runs) do
        if #run.xs > 0 then out[#out + 1] = {x = run.xs, y = run.ys, label = label_of(run)} end
    end
    return out
end

local rows, all_x, all_y = {}, {}, {}
local t_all = aim.clock()
for _, run in ipairs(runs) do
    for _, c in ipairs(run.ckpts) do
        local t0 = aim.clock()
        local m = assert(aim.load(c.path))
        local loss = aim.validation_loss(m, val, {images = a.val_images, seed = run.seed})
        local r = aim.probe(m, train, test, {blocks = blocks, epochs = a.probe_epochs,
                                             batch = a.batch, lr = a.lr, seed = run.seed})
        local row = {run = run.name, step = c.step, loss = loss, top1 = r.best.test_top1,
                     blocks = r.best.label, seconds = aim.clock() - t0}
        rows[#rows + 1] = row
        run.xs[#run.xs + 1], run.ys[#run.ys + 1] = loss, row.top1
        all_x[#all_x + 1], all_y[#all_y + 1] = loss, row.top1
        print(string.format("  %sstep %-6d val loss %.4f  probe top-1 %6.2f%%  (%.0f s)",
                            #runs > 1 and run.name .. " " or "", row.step, loss, row.top1,
                            row.seconds))
        m:close()
        -- the workbench's figure view grows a point at a time
        aim.plot{show = true, title = title, xlabel = xlabel, ylabel = ylabel,
                 series = series(function(x) return x.name end)}
    end
    run.rho = pearson(run.xs, run.ys)
end

local function rho_text(rho)
    return rho == rho and string.format("%.3f", rho) or "undefined (one of them is constant)"
end
local cols = {{"step", "step"}, {"loss", "val loss", "%.4f"}, {"top1", "probe top-1 %", "%.2f"},
              {"blocks", "blocks"}, {"seconds", "seconds", "%.0f"}}
if #runs > 1 then table.insert(cols, 1, {"run", "run"}) end
aim.print_table(rows, cols)
for _, run in ipairs(runs) do
    print(string.format("Pearson correlation (val loss, probe top-1)%s: %s over %d checkpoints%s",
                        #runs > 1 and " of " .. run.name or "", rho_text(run.rho), #run.xs,
                        #runs == 1 and string.format(" (%.0f s)", aim.clock() - t_all) or ""))
end
if #runs > 1 then
    print(string.format("Pearson correlation (val loss, probe top-1) over all %d points: %s (%.0f s)",
                        #all_x, rho_text(pearson(all_x, all_y)), aim.clock() - t_all))
end

local out = a.out ~= "" and a.out or runs[1].dir .. "/loss_vs_probe.png"
assert(aim.plot{path = out, show = true, title = title, xlabel = xlabel, ylabel = ylabel,
                series = series(function(run)
                    return run.rho == run.rho and string.format("%s (r = %.2f)", run.name, run.rho)
                        or run.name
                end)})
print("plot: " .. out)
