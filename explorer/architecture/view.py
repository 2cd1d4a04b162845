"""What the Architecture tab shows, computed from `resnext.complexity` (no weights built)."""

from __future__ import annotations

from dataclasses import dataclass

import resnext
from resnext import ComplexityReport

from resnext import SEED_152_BLOCKS
from resnext.validation import whole_number

from ..selection import CIFAR_SETTING, IMAGENET_SETTING, Selection
from ..shared import formatting as fmt
from ..shared import plots
from ..shared.formatting import card, cards
from ..shared.memory import check_module_count

DEFAULT_BASELINE = "resnet50"
# torchinfo's summary: how many levels of modules to list (1: the four stages; 6 reaches
# every conv inside a form-(a) path). The depth slider is built from this.
SUMMARY_DEPTH_RANGE = (1, 6)
SUMMARY_DEPTH_DEFAULT = 3


@dataclass(frozen=True)
class Headline:
    """The 'at a glance' figures, raw (for the API and tests) and formatted (for the page)."""

    name: str
    params: int
    macs: int
    flops: int
    weight_bytes: int
    activation_bytes: int
    depth: int
    baseline: str
    params_change_percent: float
    macs_change_percent: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ArchitectureView:
    """Everything the Architecture tab shows for one Selection, from one complexity report."""

    selection: Selection
    headline: Headline
    headline_html: str
    stage_rows: list[list[str]]
    figure: object  # plotly Figure
    config_json: str
    seed_note: str  # "" unless a seed preset
    link: str  # "?config=...": opens the app with this network on screen


def view(selection: Selection, baseline: str = DEFAULT_BASELINE) -> ArchitectureView:
    report = resnext.complexity(selection.config, selection.image_size)
    figures = headline(selection, baseline)
    return ArchitectureView(
        selection=selection,
        headline=figures,
        headline_html=headline_html(selection, figures),
        stage_rows=stage_rows(report),
        figure=network_figure(report),
        config_json=selection.to_json(),
        seed_note=seed_note(selection.preset, selection.image_size),
        link=selection.link_query(),
    )


def preset_selection(preset: str) -> Selection:
    """A preset at its native input size (224 for ImageNet nets, 32 for CIFAR ones)."""
    if preset not in resnext.PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(resnext.PRESETS)}")
    return Selection(resnext.PRESETS[preset], resnext.NATIVE_IMAGE_SIZE[preset])


@dataclass(frozen=True)
class DepthSetting:
    """What choosing a depth changes: the layout, and the stem, input side and classes when
    the choice crosses between the paper's CIFAR and ImageNet settings."""

    stage_blocks: tuple[int, ...]
    stem: str
    image_size: int
    num_classes: int
    note: str  # "" when only the layout changed


def depth_setting(depth: str, stem: str, image_size: int, num_classes: int) -> DepthSetting:
    """The setting for a standard depth (not 'custom') chosen while `stem` etc. are in use."""
    if depth not in {str(d) for d in resnext.DEPTHS}:
        raise ValueError(f"depth must be one of {', '.join(map(str, resnext.DEPTHS))} or custom, "
                         f"got {depth!r}")
    layout = resnext.blocks_for_depth(int(depth))
    cifar = int(depth) in resnext.CIFAR_DEPTHS
    target = CIFAR_SETTING if cifar else IMAGENET_SETTING
    if stem == target["stem"]:
        return DepthSetting(layout, stem, image_size, num_classes, "")
    note = ("Depth 29 is the paper's CIFAR network (Sec. 5.2, Table 7): CIFAR stem, 32×32 "
            "input, 10 classes." if cifar else
            f"Depth {depth} is an ImageNet network (Table 1): 7×7 stem with max-pool, "
            f"224×224 input, 1000 classes.")
    return DepthSetting(layout, target["stem"], target["image_size"], target["num_classes"], note)


def headline(selection: Selection, baseline: str = DEFAULT_BASELINE) -> Headline:
    if baseline not in resnext.PRESETS:
        raise ValueError(f"baseline must be one of {sorted(resnext.PRESETS)}, got {baseline!r}")
    report = resnext.complexity(selection.config, selection.image_size)
    base = resnext.complexity(resnext.PRESETS[baseline], selection.image_size)
    return Headline(
        name=selection.config.name,
        params=report.params,
        macs=report.macs,
        flops=report.flops,
        weight_bytes=report.weight_bytes,
        activation_bytes=report.activation_bytes,
        depth=report.depth,
        baseline=baseline,
        params_change_percent=100.0 * (report.params - base.params) / base.params,
        macs_change_percent=100.0 * (report.macs - base.macs) / base.macs,
    )


def headline_html(selection: Selection, figures: Headline) -> str:
    size = selection.image_size
    cfg = selection.config
    return cards(f"{figures.name} · {size}×{size} input · {cfg.num_classes} classes · "
                 f"form ({cfg.block_form})", [
        card("Parameters", fmt.count(figures.params),
              f"{figures.params_change_percent:+.1f} % vs {figures.baseline}"),
        card("Multiply-adds", fmt.scaled(figures.macs, "MACs"),
              f"{fmt.count(figures.macs)} · conv + fc, batch 1, {size}×{size}; "
              f"{figures.macs_change_percent:+.1f} % vs {figures.baseline}"),
        card("FLOPs", fmt.scaled(figures.flops, "FLOPs"),
              "2 × MACs (FlopCounterMode's convention; BN, ReLU, pooling not counted)"),
        card("Weights", fmt.byte_size(figures.weight_bytes), "float32 parameters"),
        card("Activations", fmt.byte_size(figures.activation_bytes),
              "one image, float32: every layer's output, as kept for backward"),
        card("Layers", str(figures.depth),
             f"3 × {sum(cfg.stage_blocks)} bottleneck convs + stem conv + fc"),
    ])


STAGE_COLUMNS = ["stage", "output", "channels", "group width C·d", "blocks", "params", "MACs"]


def stage_rows(report: ComplexityReport) -> list[list[str]]:
    """One row per segment (stem, each stage, head) with exact params and MACs."""
    rows = []
    for seg in report.segments:
        label = {"stem": "stem", "head": "head (pool + fc)"}.get(seg.name, seg.name)
        group = fmt.count(seg.group_width) if seg.kind == "stage" else "–"
        blocks = str(seg.blocks) if seg.kind == "stage" else "–"
        output = (f"{seg.out_height}×{seg.out_width}" if seg.kind != "head" else "1×1")
        rows.append([label, output, fmt.count(seg.out_channels), group, blocks,
                     fmt.count(seg.params), fmt.count(seg.macs)])
    rows.append(["total", "", "", "", str(sum(report.config.stage_blocks)),
                 fmt.count(report.params), fmt.count(report.macs)])
    return rows


def network_figure(report: ComplexityReport):
    """Stage widths (channels, group width) above, feature-map resolution below."""
    segments = [s for s in report.segments if s.kind != "head"]
    names = [s.name for s in segments]
    stage_groups = [s.group_width if s.kind == "stage" else 0 for s in segments]
    data = [
        {"type": "bar", "x": names, "y": [s.out_channels for s in segments],
         "name": "output channels", "text": [f"{s.out_channels:,}" for s in segments],
         "textposition": "outside", "marker": {"color": "#636efa"},
         "hovertemplate": "%{x}: %{y:,} output channels<extra></extra>"},
        {"type": "bar", "x": names, "y": stage_groups, "name": "group width C·d",
         "text": [f"{g:,}" if g else "" for g in stage_groups], "textposition": "outside",
         "marker": {"color": "#ef553b"}, "customdata": [[s.blocks] for s in segments],
         "hovertemplate": "%{x}: grouped 3×3 is %{y:,} channels wide, "
                          "%{customdata[0]} blocks<extra></extra>"},
        {"type": "bar", "x": names, "y": [s.out_height for s in segments], "xaxis": "x2",
         "yaxis": "y2", "name": "output side",
         "text": [f"{s.out_height}×{s.out_width}" for s in segments], "textposition": "outside",
         "marker": {"color": "#2ca02c"},
         "hovertemplate": "%{x}: %{text} feature maps<extra></extra>"},
    ]
    top = max(max(s.out_channels for s in segments), max(stage_groups))
    layout = {
        "barmode": "group", "height": 460,
        # Two stacked panels sharing the stage axis (what make_subplots would lay out).
        "xaxis": {"anchor": "y", "matches": "x2", "showticklabels": False},
        "yaxis": {"domain": [0.5, 1.0], "title": {"text": "channels"}, "range": [0, top * 1.25]},
        "xaxis2": {"anchor": "y2", "title": {"text": "stage (input at left)"}},
        "yaxis2": {"domain": [0.0, 0.36], "title": {"text": "pixels per side"},
                   "range": [0, max(s.out_height for s in segments) * 1.35]},
        "annotations": [
            {"text": "Width: channels out of each stage and C·d inside its blocks",
             "xref": "paper", "yref": "paper", "x": 0.5, "y": 1.06, "showarrow": False,
             "font": {"size": 14}},
            {"text": "Resolution of each stage's output (pixels per side)", "xref": "paper",
             "yref": "paper", "x": 0.5, "y": 0.42, "showarrow": False, "font": {"size": 14}},
        ],
    }
    return plots.figure(data, layout)


def seed_note(preset: str, image_size: int) -> str:
    """How the seed blog's code differs from the paper, with what each difference costs."""
    if not preset.startswith("seed_"):
        return ""
    cfg = resnext.PRESETS[preset]
    seed = resnext.complexity(cfg, image_size)
    dense = resnext.complexity(cfg.replace(grouped_reduce=False), image_size)
    head_1000 = resnext.complexity(cfg.replace(num_classes=1000), image_size)
    imagenet_stem = resnext.complexity(cfg.replace(stem="imagenet"), image_size)
    lines = [
        f"**{preset} is built exactly as the seed blog's code builds it, which differs from the paper:**",
        f"- **Grouped first 1×1 conv** (`groups=C` in its `split_transforms`); the paper's is dense "
        f"(Fig. 3c: only the 3×3 is grouped). With a dense 1×1 this model would have "
        f"{fmt.count(dense.params)} params instead of {fmt.count(seed.params)} "
        f"({fmt.percent_change(dense.params, seed.params)}) and {fmt.scaled(dense.macs, 'MACs')} "
        f"instead of {fmt.scaled(seed.macs, 'MACs')} at {image_size}×{image_size}.",
        f"- **Classifier hard-wired to 100 classes** (its `class_names` argument is never used): "
        f"a 1000-class head would have {fmt.count(head_1000.params)} params.",
        f"- **CIFAR stem** (3×3 conv, stride 1, no max-pool): at {image_size}×{image_size} every stage "
        f"runs at 4× the ImageNet stem's resolution per side, {fmt.scaled(seed.macs, 'MACs')} vs "
        f"{fmt.scaled(imagenet_stem.macs, 'MACs')} with the 7×7/2 stem and pool.",
    ]
    if preset == "seed_resnext152":
        paper_152 = resnext.blocks_for_depth(152)
        standard = resnext.complexity(cfg.replace(stage_blocks=paper_152), image_size)
        lines.append(
            f"- **Its 152 stacks {SEED_152_BLOCKS} blocks**, a {cfg.depth}-layer network; the "
            f"paper's 152 is {paper_152}: that layout would have {fmt.count(standard.params)} "
            f"params.")
    lines.append("- No special weight init in the seed (PyTorch defaults), as training with "
                 "the seed recipe keeps; random weights here use Kaiming init. Neither changes "
                 "a count.")
    return "\n".join(lines)


def summary_rows(selection: Selection, summary_depth: int = SUMMARY_DEPTH_DEFAULT
                 ) -> tuple[list[list[str]], str]:
    """torchinfo's summary of the model, built on the meta device (no weights allocated).

    Returns the per-layer rows for a table and torchinfo's own text (for download).
    """
    import torch
    import torchinfo

    depth = whole_number("summary depth", summary_depth, *SUMMARY_DEPTH_RANGE)
    check_module_count(selection.config, "The torchinfo summary")
    model = resnext.build_model(selection.config, device="meta")
    size = selection.image_size
    stats = torchinfo.summary(
        model, input_size=(1, 3, size, size), depth=depth, device=torch.device("meta"),
        col_names=("input_size", "output_size", "num_params", "mult_adds"),
        row_settings=("var_names",), mode="eval", verbose=0)
    layers = stats.summary_list
    rows = []
    for index, layer in enumerate(layers):
        if layer.depth > depth:
            continue
        # torchinfo lists an expanded container with only its "leftover" counts; show the
        # totals of everything beneath it instead (layers come in depth-first order).
        subtree = [layer]
        for later in layers[index + 1:]:
            if later.depth <= layer.depth:
                break
            subtree.append(later)
        params = sum(p.numel() for p in layer.module.parameters())
        macs = sum(item.macs for item in subtree if item.is_leaf_layer)
        name = layer.var_name if layer.depth else type(model).__name__
        rows.append([
            ("· " * layer.depth) + str(name),
            layer.class_name,
            _shape(layer.input_size),
            _shape(layer.output_size),
            fmt.count(params) if params else "–",
            fmt.count(macs) if macs else "–",
        ])
    return rows, str(stats)


SUMMARY_COLUMNS = ["layer", "type", "input", "output", "params", "mult-adds (torchinfo)"]


def _shape(size) -> str:
    if not size:
        return "–"
    return "×".join(str(d) for d in size)
