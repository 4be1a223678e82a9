-- aim/init.lua - the module `aim` (local aim = require "aim"): the C
-- bindings from "aim.core" (models, datasets, tensors, PNG, jobs) plus the
-- pure-Lua helpers of this folder. Embedded into the binary at build time
-- (src/lua/embed.sh), so it works from the build tree and once installed.
local aim = require "aim.core"
local pretty = require "aim.pretty"
local util = require "aim.util"

aim.presets = {"micro", "tiny", "small"}

-- printing: aim.format(v) -> string, aim.pp(...) prints, aim.print_table
aim.format = pretty.format
aim.pp = pretty.pp
aim.format_table = pretty.table
aim.print_table = function(rows, columns, opts)
    print(pretty.table(rows, columns, opts))
end

-- experiments: script arguments, run folders
aim.args = util.args
aim.run_dir = util.run_dir

return aim
