-- aim/util.lua - helpers for experiment scripts: `key=value` script
-- arguments checked against defaults (aim.args) and run folder names
-- (aim.run_dir). aim.data.default (the data as `aim train --data` opens it)
-- is C: src/lua/l_data.c.
local M = {}

local function convert(key, value, default)
    local t = type(default)
    if t == "number" then
        local n = tonumber(value)
        if not n then
            error(string.format("argument %s=%s: a number is expected", key, value), 3)
        end
        if math.type(default) == "integer" and math.type(n) ~= "integer" then
            if n ~= math.floor(n) then
                error(string.format("argument %s=%s: an integer is expected", key, value), 3)
            end
            n = math.tointeger(n)
        end
        return n
    elseif t == "boolean" then
        if value == "true" or value == "1" or value == "yes" then return true end
        if value == "false" or value == "0" or value == "no" then return false end
        error(string.format("argument %s=%s: true or false is expected", key, value), 3)
    end
    return value
end

--- args(arg, defaults) -> table: parse `key=value` strings (arg[1..]) into a
--- copy of defaults, converting each value to the type of its default.
--- Unknown keys and badly typed values raise an error naming them. A key
--- whose default is false may be given alone (`flip` = `flip=true`).
function M.args(arg, defaults)
    defaults = defaults or {}
    local out = {}
    for k, v in pairs(defaults) do
        out[k] = v
    end
    for i = 1, #(arg or {}) do
        local a = arg[i]
        local key, value = a:match("^([%a_][%w_]*)=(.*)$")
        if not key then
            key = a:match("^[%a_][%w_]*$") and a
            if key and type(defaults[key]) == "boolean" then
                value = "true"
            else
                error(string.format("argument '%s': expected key=value", a), 2)
            end
        end
        if defaults[key] == nil then
            local known = {}
            for k in pairs(defaults) do
                known[#known + 1] = k
            end
            table.sort(known)
            error(string.format("unknown argument '%s' (known: %s)", key,
                                table.concat(known, ", ")), 2)
        end
        out[key] = convert(key, value, defaults[key])
    end
    return out
end

--- run_dir(name) -> "runs/YYYYmmdd-HHMMSS-name"
function M.run_dir(name)
    return "runs/" .. os.date("%Y%m%d-%H%M%S") .. (name and ("-" .. name) or "")
end

return M
