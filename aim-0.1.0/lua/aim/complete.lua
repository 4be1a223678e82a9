-- aim/complete.lua - completion candidates for the console: given the word
-- before the cursor ("aim.data.fa", "m:pre", "pri") return the full words
-- that complete it, sorted: table fields after ".", methods of userdata
-- (their metatable's method table) and strings after ":", globals and
-- keywords otherwise. Used by `aim repl` (readline) and later the TUI.
local keywords = {
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
}

-- the table of names reachable with "." or ":" from v
local function fields(v, colon)
    local out = {}
    local function add(t)
        if type(t) ~= "table" then return end
        for k in pairs(t) do
            if type(k) == "string" and k:match("^[%a_][%w_]*$") then out[k] = t[k] end
        end
    end
    if type(v) == "table" and not colon then
        add(v)
    end
    local mt = getmetatable(v)
    if type(mt) == "table" then
        add(rawget(mt, "methods"))
        local idx = rawget(mt, "__index")
        if type(idx) == "table" then add(idx) end
    end
    if type(v) == "string" then
        add(string)
    end
    return out
end

local function resolve(path)
    local v = _G
    for name in path:gmatch("[^%.:]+") do
        local ok, nv = pcall(function() return v[name] end)
        if not ok or nv == nil then return nil end
        v = nv
    end
    return v
end

return function(word)
    local base, sep, part = word:match("^(.-)([%.:])([%w_]*)$")
    local names, prefix = {}, ""
    if base and base ~= "" then
        local v = resolve(base)
        if v == nil then return {} end
        names = fields(v, sep == ":")
        prefix = base .. sep
    else
        part = word
        names = fields(_G, false)
        for _, k in ipairs(keywords) do
            names[k] = true
        end
    end
    local out = {}
    for k in pairs(names) do
        if k:sub(1, #part) == part then
            out[#out + 1] = prefix .. k
        end
    end
    table.sort(out)
    return out
end
