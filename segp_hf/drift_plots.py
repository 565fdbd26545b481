"""Plots of ``segp-hf diagnose`` (matplotlib, Agg backend): interface vs core drift per task, and the text
neighbourhood of the most drifted class before and after."""

from __future__ import annotations

PLOTTED = (
    ("text_kl_before", "text-neighbourhood KL (vs before t)"),
    ("text_shift_before", "text embedding shift (vs before t)"),
    ("margin_change_before", "correct-class margin change (vs before t)"),
    ("cosine_change_before", "image-text cosine change (vs before t)"),
    ("visual_shift_before", "class-mean shift, raw features (vs before t)"),
    ("text_kl_pretrained", "text-neighbourhood KL (vs pretrained)"),
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_groups(result: dict, path) -> None:
    """One panel per measure: its interface and core means after each task."""
    plt = _pyplot()
    records = [r for r in result["tasks"] if r["groups"]]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (measure, title) in zip(axes.flat, PLOTTED):
        for group, style in (("interface", "o-"), ("core", "s--")):
            points = [(r["task"], r["groups"][group].get(measure)) for r in records]
            points = [(t, v) for t, v in points if v is not None]
            if points:
                ax.plot(*zip(*points), style, label=group)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("after task")
        ax.grid(alpha=0.3)
    axes.flat[0].legend()
    fig.suptitle(f"{result.get('variant')}: drift of old classes, interface vs core ({result['split']} split, "
                 f"k={result['k']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_neighbourhood(picture: dict, path) -> None:
    """The most drifted class's neighbours: pretrained (q) and current (p) neighbourhood probabilities."""
    import numpy as np

    plt = _pyplot()
    names = picture["neighbour_names"]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.5 + 0.8 * len(names), 4))
    ax.bar(x - 0.2, picture["q_pretrained"], 0.4, label="pretrained (q)")
    ax.bar(x + 0.2, picture["p_current"], 0.4, label=f"after task {picture['task']} (p)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("neighbourhood probability")
    where = "interface" if picture["interface"] else "core"
    ax.set_title(f"text neighbourhood of '{picture['class_name']}' ({where}), KL(q||p) = {picture['kl']:.3f}",
                 fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
