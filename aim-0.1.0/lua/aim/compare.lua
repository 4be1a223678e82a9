-- aim/compare.lua - what `aim tui --compare RUN...` runs: read the run
-- folders with aim.compare (which publishes them: the loss panel overlays
-- their curves, the probe panel groups their bars) and print a table of
-- them in the console. The summaries stay in the console as the global
-- `runs`; aim.compare{...} there shows another set, aim.compare{} clears it.
local M = {}

local function fmt(v, f)
    return v and string.format(f, v) or "-"
end

--- open(paths) -> the aim.compare summaries, after printing them
function M.open(paths)
    local aim = require "aim"
    local runs, err = aim.compare(paths)
    if not runs then
        error(err, 0)
    end
    local rows = {}
    for i, r in ipairs(runs) do
        rows[i] = {
            run = r.label, steps = r.steps, loss = fmt(r.final_loss, "%.4f"),
            ["best val"] = r.best_val and string.format("%.4f@%d", r.best_val, r.best_val_step)
                           or "-",
            ["probe%"] = r.best_probe and string.format("%.2f b%d", r.best_probe,
                                                         r.best_probe_block) or "-",
        }
    end
    print(string.format("comparing %d run%s:", #runs, #runs == 1 and "" or "s"))
    aim.print_table(rows, {"run", "steps", "loss", "best val", "probe%"})
    _G.runs = runs
    return runs
end

return M
