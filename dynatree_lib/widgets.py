"""An ipywidgets control panel that reruns the decoder in a live kernel (Colab, JupyterLab).

In the static book these widgets render but run no Python; the figures with plotly
sliders (``viz.tree_slider_figure``, ``viz.sweep_heatmap_figure``) carry the
interactivity there.
"""

from __future__ import annotations

import torch

from .decode import generate
from .methods import Autoregressive, DynaTree, FixedTree, Linear


class ControlPanel:
    """Sliders for the method's knobs, a prompt box and a run button.

    ``panel.widget`` is the ipywidgets box to display; ``panel.run()`` does what the
    button does: decode the prompt with the chosen method, draw the first tree and
    print the stats and the exactness verdict against greedy AR.
    """

    def __init__(self, pair, prompt: str = "The tree of life", max_new_tokens: int = 48) -> None:
        import ipywidgets as w

        self.pair = pair
        style = {"description_width": "initial"}
        self.method = w.Dropdown(options=["dynatree", "fixed", "linear"], value="dynatree",
                                 description="method")
        self.depth = w.IntSlider(8, 1, 12, description="D / D_max / k", style=style)
        self.base_depth = w.IntSlider(5, 1, 12, description="D_0", style=style)
        self.branch = w.IntSlider(3, 1, 6, description="B / B_max", style=style)
        self.threshold = w.FloatLogSlider(0.05, base=10, min=-3, max=-0.3, description="prune ε", style=style)
        self.tau_high = w.FloatSlider(0.9, min=0.05, max=0.99, step=0.01, description="τ_high", style=style)
        self.tau_low = w.FloatSlider(0.4, min=0.01, max=0.95, step=0.01, description="τ_low", style=style)
        self.rho_stop = w.FloatSlider(0.1, min=0.01, max=0.9, step=0.01, description="ρ_stop", style=style)
        self.rho_deep = w.FloatSlider(0.5, min=0.01, max=0.95, step=0.01, description="ρ_deep", style=style)
        self.max_nodes = w.IntSlider(64, 1, 256, description="N_max", style=style)
        self.tokens = w.IntSlider(max_new_tokens, 1, 256, description="new tokens", style=style)
        self.prompt = w.Textarea(prompt, description="prompt", layout={"width": "100%"})
        self.button = w.Button(description="Run", button_style="primary")
        self.output = w.Output()
        self.button.on_click(lambda _: self.run())
        knobs = [self.method, self.depth, self.base_depth, self.branch, self.threshold, self.tau_high,
                 self.tau_low, self.rho_stop, self.rho_deep, self.max_nodes, self.tokens]
        self.widget = w.VBox([self.prompt, w.HBox([w.VBox(knobs[:6]), w.VBox(knobs[6:])]), self.button,
                              self.output])

    def config(self):
        """The method config of the current slider values (validated by its dataclass)."""
        if self.method.value == "linear":
            return Linear(k=self.depth.value)
        if self.method.value == "fixed":
            return FixedTree(depth=self.depth.value, branch=self.branch.value, threshold=self.threshold.value,
                             max_nodes=self.max_nodes.value)
        return DynaTree(base_depth=min(self.base_depth.value, self.depth.value), max_depth=self.depth.value,
                        max_branch=self.branch.value, mid_branch=min(2, self.branch.value),
                        threshold=self.threshold.value, tau_high=self.tau_high.value,
                        tau_low=min(self.tau_low.value, self.tau_high.value - 0.01),
                        rho_stop=min(self.rho_stop.value, self.rho_deep.value), rho_deep=self.rho_deep.value,
                        max_nodes=self.max_nodes.value)

    def run(self) -> dict:
        """Decode and redraw; returns the numbers it shows."""
        from IPython.display import display

        from .viz import show, tree_figure

        pair = self.pair
        ids = torch.tensor([pair.tokenizer(self.prompt.value).input_ids], device=pair.device)
        self.output.clear_output()
        with self.output:
            try:
                method = self.config()
            except ValueError as error:
                print(f"invalid setting: {error}")
                return {"error": str(error)}
            result = generate(pair.target, pair.draft, ids, method, self.tokens.value, eos_token_id=[],
                              trace=True)
            reference = generate(pair.target, None, ids, Autoregressive(), self.tokens.value, eos_token_id=[])
            s = result.stats
            summary = {"method": repr(method), "identical_to_ar": result.new_tokens == reference.new_tokens,
                       "tau": s.tau, "acceptance_rate": s.acceptance_rate, "iterations": s.iterations,
                       "speedup": s.throughput / reference.stats.throughput}
            print(pair.tokenizer.decode(result.new_tokens))
            display(summary)
            if result.trace:
                show(tree_figure(result.trace[0], pair.tokenizer, title="first verification step"))
        return summary
