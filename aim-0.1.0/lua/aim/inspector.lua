-- aim/inspector.lua - what `aim tui --inspect WEIGHTS` runs: load a model
-- (and the probe saved with it, if any), pick a few test images (one per
-- class), compute what the Inspect view shows (aim.inspect) and publish it.
-- The model, the images and the probe stay in the console as the globals
-- m, x and probe, so that aim.inspect(m, x, {...}) can publish other views.
local M = {}

--- pick(ds, n) -> images [n',C,H,W] of ds, one per class in class order
--- from the first 2000 images (then more in dataset order to fill up), and
--- their labels
function M.pick(ds, n)
    local aim = require "aim"
    local scan = math.min(#ds, 2000)
    local _, labels = ds:batch(1, scan)
    local chosen, seen = {}, {}
    for cls = 0, 63 do
        for i = 1, scan do
            if labels[i] == cls then
                chosen[#chosen + 1] = i
                seen[i] = true
                break
            end
        end
        if #chosen == n then break end
    end
    for i = 1, scan do
        if #chosen == n then break end
        if not seen[i] then chosen[#chosen + 1] = i end
    end
    local parts, ys = {}, {}
    for k, i in ipairs(chosen) do
        local xi, yi = ds:batch(i, 1)
        parts[k], ys[k] = xi, yi[1]
    end
    return aim.tensor.cat(parts), ys
end

--- open(path [, opts]) -> the aim.inspect result. opts: images (default
--- 8), data (a dataset; default the test split of aim.data.default at the
--- model's size), prefix (the error map's S, default 1).
function M.open(path, opts)
    local aim = require "aim"
    opts = opts or {}
    local m, err = aim.load(path)
    if not m then error(err, 0) end
    local probe = aim.load_probe(path) -- nil when the file holds none
    local c = m:config()
    local ds = opts.data or aim.data.default("test", {channels = c.channels, size = c.image})
    local x = M.pick(ds, opts.images or 8)
    local name = path:match("([^/]+)$") or path
    local r = aim.inspect(m, x, {probe = probe, prefix = opts.prefix, source = name})
    _G.m, _G.x, _G.probe = m, x, probe
    local best, bl = -1, 0
    for _, s in ipairs(r.stats) do
        if s.erank > best then best, bl = s.erank, s.block end
    end
    print(string.format("inspect %s: %d images, %d blocks, %dx%d patches%s; loss %.4f; " ..
                        "highest effective rank in block %d (%.1f)", name, x:size(1), c.depth,
                        r.grid, r.grid, probe and (", " .. tostring(probe):gsub("^aim%.probe ", ""))
                        or " (no probe in the file: no attention maps)", r.loss, bl, best))
    if not r.published then print("(not shown: " .. tostring(r.note) .. ")") end
    return r
end

return M
