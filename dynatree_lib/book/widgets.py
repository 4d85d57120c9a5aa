"""An ipywidgets control panel that reruns the decoder in a live kernel (Colab, JupyterLab).

Every field of the chosen method's config gets a control (for DynaTree all nineteen, from
B_min to the lookup extension), with the config's own defaults. Nothing is clipped: an
invalid combination is shown with the config's error message. Decoding takes seconds,
so the panel decodes when Run is pressed, not on every change, and shows its progress
(a bar and a status line, updated after every target forward) while it does. In the static book the
widgets render but run no Python; the precomputed explorer carries the interactivity
there (``viz.explorer_html``).
"""

from __future__ import annotations

from dataclasses import fields

import torch

from ..core.decode import generate
from ..core.growth import METHODS as TABLE
from ..core.methods import CONTROLLERS, Autoregressive

# The methods that draft, from the core's table, DynaTree first (the panel's default).
METHODS = {entry.name: entry.config for entry in reversed(TABLE.values()) if entry.drafts}
# Slider ranges per field name; anything else gets a number box.
RANGES = {"k": (1, 16), "depth": (1, 16), "base_depth": (1, 16), "max_depth": (1, 16), "branch": (1, 6),
          "min_branch": (1, 6), "mid_branch": (1, 6), "max_branch": (1, 6), "max_nodes": (1, 256),
          "history_window": (1, 50), "lookup": (0, 32), "lookup_ngram": (1, 6)}
SYMBOLS = {"base_depth": "D_0", "max_depth": "D_max", "min_branch": "B_min", "mid_branch": "B_mid",
           "max_branch": "B_max", "theta_high": "θ_high", "theta_low": "θ_low", "rho_stop": "ρ_stop",
           "rho_deep": "ρ_deep", "threshold": "ε (prune)", "max_nodes": "N_max", "history_window": "W",
           "target_acceptance": "α*", "draft_cost": "β", "depth_gain": "k_D", "theta_gain": "k_θ",
           "lookup": "lookup L", "lookup_ngram": "lookup n-gram", "measure_costs": "priced",
           "depth": "D", "branch": "B", "k": "k", "adapt": "adapt"}

# Shown above the Run button: in the static book the widgets render, but nothing runs behind them.
HINT = ("<b>Run</b> needs a live kernel (Jupyter or Colab); on the static site it does nothing, and the "
        "explorer above is precomputed. In a kernel: change the settings, then press <b>Run</b> to "
        "decode the prompt with this method and with greedy AR (a few seconds on a CPU).")


def _control(name: str, default):
    import ipywidgets as w

    style, label = {"description_width": "110px"}, SYMBOLS.get(name, name)
    if isinstance(default, bool):
        return w.Checkbox(default, description=label, style=style, indent=False)
    if isinstance(default, str):  # a named rule: DynaTree's history controller
        return w.Dropdown(options=list(CONTROLLERS), value=default, description=label, style=style)
    if isinstance(default, int):
        low, high = RANGES.get(name, (0, 100))
        return w.IntSlider(default, low, high, description=label, style=style)
    if name in ("depth_gain", "theta_gain"):
        return w.BoundedFloatText(default, min=0.0, max=10.0, step=0.05, description=label, style=style)
    return w.FloatSlider(default, min=0.01, max=0.99, step=0.01, description=label, style=style)


class ControlPanel:
    """A method menu, one control per config field, a prompt box and a Run button.

    ``panel.widget`` is the box to display; ``panel.run()`` does what the button does: decode
    the prompt with the current settings, draw the first tree and print the statistics and
    the verdict against greedy AR.
    """

    def __init__(self, pair, prompt: str = "The tree of life", max_new_tokens: int = 48) -> None:
        import ipywidgets as w

        self.pair = pair
        self.method = w.Dropdown(options=list(METHODS), value="dynatree", description="method")
        self.knobs = {kind: {f.name: _control(f.name, getattr(cls(), f.name)) for f in fields(cls)}
                      for kind, cls in METHODS.items()}
        self.tokens = w.IntSlider(max_new_tokens, 1, 256, description="new tokens")
        self.prompt = w.Textarea(prompt, description="prompt", layout={"width": "100%"})
        self.button = w.Button(description="Run", button_style="primary")
        self.bar = w.IntProgress(0, 0, max_new_tokens, description="", layout={"width": "30%"})
        self.status = w.Label("")
        self.output = w.Output()
        self.button.on_click(lambda _: self.run())
        self.boxes = {kind: w.GridBox(list(controls.values()),
                                      layout={"grid_template_columns": "repeat(2, 50%)"})
                      for kind, controls in self.knobs.items()}
        self.method.observe(lambda _: self._show_knobs(), names="value")
        hint = w.HTML(f"<i>{HINT}</i>")
        self.widget = w.VBox([self.prompt, w.HBox([self.method, self.tokens]), *self.boxes.values(), hint,
                              w.HBox([self.button, self.bar, self.status]), self.output])
        self._show_knobs()

    def _show_knobs(self) -> None:
        for kind, box in self.boxes.items():
            box.layout.display = None if kind == self.method.value else "none"

    def config(self):
        """The method config of the current values; raises the config's ValueError if invalid."""
        # A slider's value comes back from the browser as min + k * step (0.09999999999999999):
        # round it to the slider's 0.01 grid so the config says 0.1.
        values = {name: round(control.value, 6) if isinstance(control.value, float) else control.value
                  for name, control in self.knobs[self.method.value].items()}
        return METHODS[self.method.value](**values)

    def _progress(self, name: str):
        """A ``generate`` progress callback that moves the bar and names the run."""
        total = self.tokens.value
        self.bar.max, self.bar.value = total, 0

        def report(done: int) -> None:
            self.bar.value = done
            self.status.value = f"{name}: {done}/{total} tokens"
        return report

    def run(self) -> dict:
        """Decode and redraw; returns the numbers it shows."""
        from .viz import show, tree_figure

        pair = self.pair
        ids = torch.tensor([pair.tokenizer(self.prompt.value).input_ids], device=pair.device)
        self.output.clear_output()
        with self.output:
            try:
                method = self.config()
            except ValueError as error:
                self.bar.value, self.status.value = 0, "not run: invalid setting"
                print(f"invalid setting: {error}")
                return {"error": str(error)}
            self.button.disabled = True  # one run at a time; a second click would queue behind it
            try:
                result = generate(pair.target, pair.drafter, ids, method, self.tokens.value, eos_token_id=[],
                                  trace=True, progress=self._progress(self.method.value))
                reference = generate(pair.target, None, ids, Autoregressive(), self.tokens.value,
                                     eos_token_id=[], progress=self._progress("greedy AR (reference)"))
            finally:
                self.button.disabled = False
            s = result.stats
            summary = {"method": repr(method), "identical_to_ar": result.new_tokens == reference.new_tokens,
                       "tau": s.tau, "acceptance_rate": s.acceptance_rate, "iterations": s.iterations,
                       "speedup": s.throughput / reference.stats.throughput}
            self.status.value = (f"done: {len(result.new_tokens)} tokens, {s.target_forwards} target "
                                 f"forwards ({summary['speedup']:.2f}x AR)")
            print(pair.tokenizer.decode(result.new_tokens))
            print(f"method: {summary['method']}")
            print(f"identical_to_ar: {summary['identical_to_ar']}   tau: {s.tau:.2f}   acceptance rate: "
                  f"{s.acceptance_rate:.2f}   iterations: {s.iterations}   "
                  f"speedup: {summary['speedup']:.2f}x")
            if result.trace:
                show(tree_figure(result.trace[0], pair.tokenizer, title="first verification step"))
        return summary
