-- aim/keys.lua - the TUI's key bindings (aim.ui in the console): each key
-- is bound to a screen action (a name the TUI handles itself, at once, even
-- while the engine is busy) or to a Lua function (run by the engine between
-- two training steps; what it returns shows on the message line), with a
-- one-line note. The help screen (?) is generated from this table, so a
-- binding without a note is refused.
--
-- Override them in ~/.config/aim/init.lua ($XDG_CONFIG_HOME/aim/init.lua),
-- which the TUI runs at start:
--
--   aim.ui.bind("z", function() return lr() end, "show the current learning rate")
--   aim.ui.bind("l", nil)                      -- remove a binding
--
-- Key names: a printable character ("s", "?", "+"), or space, tab, enter,
-- esc, backspace, up, down, left, right, pgup, pgdn, home, end, f1..f12,
-- C-a..C-z (Ctrl). Screen actions: quit, help, console, back, pause,
-- log_scale, smooth_more, smooth_less, redraw, scroll_up, scroll_down,
-- inspect, inspect_prev_image, inspect_next_image, inspect_prev_block,
-- inspect_next_block, inspect_map, inspect_head, figure.
local M = {}

M.actions = {
    quit = "quit (asks first while a job runs, and offers to save)",
    help = "this help",
    console = "focus the Lua console",
    back = "leave the console or close an overlay",
    pause = "pause or resume the running job",
    log_scale = "loss plot: logarithmic / linear y axis",
    smooth_more = "loss plot: more smoothing",
    smooth_less = "loss plot: less smoothing",
    redraw = "redraw the screen",
    scroll_up = "console: scroll the output back",
    scroll_down = "console: scroll the output forward",
    inspect = "the Inspect view: PCA, attention and error maps per block, or back",
    inspect_prev_image = "Inspect view: the previous image",
    inspect_next_image = "Inspect view: the next image",
    inspect_prev_block = "Inspect view: the previous block",
    inspect_next_block = "Inspect view: the next block",
    inspect_map = "Inspect view: the next map (PCA, attention, error)",
    inspect_head = "Inspect view: the attention of the next probe head (or their mean)",
    figure = "the script's figure (aim.plot{show = true}) in the loss plot's place, or back",
}

local bindings = {} -- key -> {key =, action = name | function, note =}
local order = {}    -- keys in the order they were first bound
M.version = 0

local named = {
    space = true, tab = true, enter = true, esc = true, backspace = true, up = true,
    down = true, left = true, right = true, pgup = true, pgdn = true, home = true,
    ["end"] = true,
}

--- key_name(k) -> the normalised key name, or nil, message
function M.key_name(k)
    if type(k) ~= "string" or k == "" then return nil, "a key name is a non-empty string" end
    if utf8.len(k) == 1 and k ~= " " and not k:match("^%c$") then return k end
    local l = k:lower()
    if l == " " then return "space" end
    if named[l] then return l end
    local f = l:match("^f(%d%d?)$")
    if f and tonumber(f) >= 1 and tonumber(f) <= 12 then return l end
    local c = k:match("^[Cc]%-(%a)$")
    if c then return "C-" .. c:lower() end
    return nil, string.format("unknown key name '%s' (a character, space, tab, enter, esc, " ..
                              "backspace, arrows, pgup, pgdn, home, end, f1..f12 or C-a..C-z)", k)
end

--- bind(key, action, note): action is a screen action name (M.actions) or
--- a function; nil removes the binding.
function M.bind(key, action, note)
    local k, err = M.key_name(key)
    if not k then error(err, 2) end
    if action == nil then
        if bindings[k] then
            bindings[k] = nil
            for i, o in ipairs(order) do
                if o == k then table.remove(order, i) break end
            end
            M.version = M.version + 1
        end
        return
    end
    if type(action) == "string" then
        if not M.actions[action] then
            local known = {}
            for a in pairs(M.actions) do known[#known + 1] = a end
            table.sort(known)
            error(string.format("unknown screen action '%s' (known: %s)", action,
                                table.concat(known, ", ")), 2)
        end
        note = note or M.actions[action]
    elseif type(action) ~= "function" then
        error("bad argument #2 to 'bind' (a screen action name or a function expected)", 2)
    end
    if type(note) ~= "string" or note == "" then
        error("bad argument #3 to 'bind' (a note for the help screen expected)", 2)
    end
    if not bindings[k] then order[#order + 1] = k end
    bindings[k] = {key = k, action = action, note = (note:gsub("[%c]", " "))}
    M.version = M.version + 1
end

--- list() -> {{key =, action =, note =}, ...} in binding order
function M.list()
    local out = {}
    for _, k in ipairs(order) do out[#out + 1] = bindings[k] end
    return out
end

--- export([version]) -> the table as text for the TUI: the version on the
--- first line, then "key<TAB>action<TAB>note" per binding, where action is
--- the screen action or "lua"; "" if version is already current.
function M.export(version)
    if version == M.version then return "" end
    local lines = {tostring(M.version)}
    for _, b in ipairs(M.list()) do
        local a = type(b.action) == "string" and b.action or "lua"
        lines[#lines + 1] = b.key .. "\t" .. a .. "\t" .. b.note
    end
    return table.concat(lines, "\n")
end

--- press(key): run the function bound to key (the TUI calls this)
function M.press(key)
    local b = bindings[key]
    if not b then return nil, "no binding for " .. tostring(key) end
    if type(b.action) ~= "function" then return nil, key .. " is a screen action" end
    return b.action()
end

-- ------------------------------------------------------- the defaults
local function aim() return require "aim" end

M.bind("space", "pause", "pause or resume the running job")
M.bind(":", "console", "focus the Lua console (Esc comes back)")
M.bind("tab", "console", "focus the Lua console (Tab there completes)")
M.bind("esc", "back", "back: close help or a question, leave the Inspect view")
M.bind("s", function() return aim().save_checkpoint() end,
       "save a checkpoint now (into the run folder)")
M.bind("r", function() return aim().recon_now() end, "refresh the reconstructions now")
M.bind("p", function() return aim().probe_now() end,
       "run the live linear probe of every block now")
M.bind("l", "log_scale", "loss plot: logarithmic / linear y axis")
M.bind("+", "smooth_more", "loss plot: more EMA smoothing (+0.1, up to 0.99)")
M.bind("=", "smooth_more", "loss plot: more EMA smoothing (like +)")
M.bind("-", "smooth_less", "loss plot: less EMA smoothing (-0.1, down to 0)")
M.bind("f", "figure", "the script's figure (aim.plot{show = true}) / the loss curve")
M.bind("i", "inspect", "the Inspect view (maps of what each block computed) / back")
M.bind("[", "inspect_prev_image", "Inspect view: the previous image")
M.bind("]", "inspect_next_image", "Inspect view: the next image")
M.bind("<", "inspect_prev_block", "Inspect view: the previous block")
M.bind(",", "inspect_prev_block", "Inspect view: the previous block (like <)")
M.bind(">", "inspect_next_block", "Inspect view: the next block")
M.bind(".", "inspect_next_block", "Inspect view: the next block (like >)")
M.bind("m", "inspect_map", "Inspect view: next map (PCA, probe attention, next-patch error)")
M.bind("h", "inspect_head", "Inspect view, attention: the next probe head, or their mean")
M.bind("pgup", "scroll_up", "console output: scroll back")
M.bind("pgdn", "scroll_down", "console output: scroll forward")
M.bind("C-l", "redraw", "redraw the screen")
M.bind("?", "help", "show or close this help")
M.bind("f1", "help", "show or close this help")
M.bind("q", "quit", "quit (asks first while a job runs, and offers to save)")
M.version = 0

return M
