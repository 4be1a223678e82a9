-- aim/console.lua - what the interactive console adds to a fresh engine
-- state: the global `aim`, the job controls pause(), resume(), stop(),
-- lr(x), save(), probe() and recon() as globals (they act on the running
-- job; see aim.pause, aim.save_checkpoint), help(), aim.ui (the TUI's key
-- bindings, aim/keys.lua), and format(...), which the host uses to echo
-- values (tables pretty-printed).
local aim = require "aim"
local pretty = require "aim.pretty"

local M = {}

_G.aim = aim
_G.pause = aim.pause
_G.resume = aim.resume
_G.stop = aim.stop
_G.lr = aim.lr
_G.save = aim.save_checkpoint
_G.probe = aim.probe_now
_G.recon = aim.recon_now
aim.ui = require "aim.keys"

local help_text = [[
aim console: Lua 5.4 with the `aim` module loaded.
  m = aim.model "tiny"                  a model (presets: micro, tiny, small)
  ds = aim.data.default "train"         Fashion-MNIST, or synthetic when missing
  r = aim.pretrain(m, ds, {steps=100})  train; progress on stderr
  x = ds:batch(1, 8)                    images [8,C,H,W], normalised
  m:loss(x, {prefix=4})                 the AIM loss
  aim.probe(m, ds, test, {blocks={3,4}}) attentive probe of frozen block features
  aim.lora(m, ds, test, {rank=8})       LoRA fine-tuning: adapters + probe head
  aim.reconstruct(m, x, {png="r.png"})  input | prediction | target
  aim.inspect(m, x)                     PCA maps, statistics, error per block (TUI: i)
  aim.compare{"runs/a", "runs/b"}       runs side by side: loss curves, probes (TUI)
  pause() resume() stop() lr(3e-4)      control the running job (from a console)
  save() probe() recon()                checkpoint, live probe, reconstructions now
Tab completes names (aim., m:, ...). Ctrl-C interrupts, Ctrl-D leaves.]]

function _G.help()
    print(help_text)
end

--- format(...) -> the values as the console shows them, tab separated
function M.format(...)
    local out = {}
    for i = 1, select("#", ...) do
        out[i] = pretty.format((select(i, ...)))
    end
    return table.concat(out, "\t")
end

return M
