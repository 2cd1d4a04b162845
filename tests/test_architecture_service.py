"""What the Architecture tab shows, checked against resnext.complexity and independent counts."""

import pytest

import resnext
from explorer.selection import Selection
from explorer.architecture import view as service
from explorer.shared import downloads
from explorer.shared import formatting as fmt


def sel(name, size=None):
    return Selection(resnext.PRESETS[name], size or resnext.NATIVE_IMAGE_SIZE[name])


def test_headline_numbers_for_resnext50():
    figures = service.headline(sel("resnext50_32x4d"))
    assert figures.params == 25_028_904
    assert figures.macs == 4_230_479_872 and figures.flops == 2 * 4_230_479_872
    assert figures.weight_bytes == 4 * 25_028_904
    assert figures.depth == 50
    # Against ResNet-50 (25,557,032 params; 4,089,184,256 MACs).
    assert figures.params_change_percent == pytest.approx(100 * (25_028_904 / 25_557_032 - 1))
    assert figures.macs_change_percent == pytest.approx(100 * (4_230_479_872 / 4_089_184_256 - 1))
    page = service.headline_html(sel("resnext50_32x4d"), figures)
    assert "25,028,904" in page and "4.23 GMACs" in page and "8.46 GFLOPs" in page
    assert "100.1 MB" in page and "-2.1 % vs resnet50" in page and "+3.5 % vs resnet50" in page


def test_headline_for_resnext101_32x8d_and_baseline_choice():
    figures = service.headline(sel("resnext101_32x8d"), baseline="resnext101_32x8d")
    assert figures.params == 88_791_336
    assert figures.params_change_percent == 0 and figures.macs_change_percent == 0
    with pytest.raises(ValueError, match="baseline must be one of"):
        service.headline(sel("resnet50"), baseline="vgg")


def test_stage_rows_match_complexity():
    selection = sel("resnext101_64x4d")
    report = resnext.complexity(selection.config, selection.image_size)
    rows = service.stage_rows(report)
    assert [r[0] for r in rows] == ["stem", "layer1", "layer2", "layer3", "layer4",
                                    "head (pool + fc)", "total"]
    for row, segment in zip(rows, report.segments):
        assert row[5] == fmt.count(segment.params) and row[6] == fmt.count(segment.macs)
    assert rows[3][1:5] == ["14×14", "1,024", "1,024", "23"]  # layer3: 64 x 4d x (256/64)
    assert rows[-1][5:] == ["83,455,272", "15,460,270,080"]


def test_network_figure_data_is_the_reports():
    selection = sel("resnext50_32x4d", 97)
    report = resnext.complexity(selection.config, 97)
    figure = service.network_figure(report)
    channels, groups, sides = figure.data
    stages = [s for s in report.segments if s.kind != "head"]
    assert list(channels.x) == [s.name for s in stages]
    assert list(channels.y) == [s.out_channels for s in stages]
    assert list(groups.y) == [0, 128, 256, 512, 1024]
    assert list(sides.y) == [s.out_height for s in stages] == [25, 25, 13, 7, 4]


def test_seed_note_numbers():
    assert service.seed_note("resnext50_32x4d", 224) == ""
    note = service.seed_note("seed_resnext50", 224)
    dense = resnext.complexity(resnext.PRESETS["seed_resnext50"].replace(grouped_reduce=False), 224)
    assert fmt.count(dense.params) in note and "14,788,772" in note
    assert "100 classes" in note and "Grouped first 1×1" in note
    assert "(3, 8, 36, 3)" in service.seed_note("seed_resnext152", 224)


def test_torchinfo_summary_agrees_with_complexity():
    selection = sel("resnext50_32x4d")
    rows, text = service.summary_rows(selection, summary_depth=2)
    assert rows[0][:2] == ["ResNeXt", "ResNeXt"] and rows[0][4] == "25,028,904"
    report = resnext.complexity(selection.config, 224)
    bn_params = sum(l.params for l in report.layers if l.kind == "bn")
    # torchinfo counts BN (one mult-add per BN parameter) and the fc bias as mult-adds too.
    assert rows[0][5] == fmt.count(report.macs + bn_params + 1000)
    layer3 = next(r for r in rows if r[0] == "· layer3")
    assert layer3[4] == fmt.count(report.segments[3].params)
    assert "Total params: 25,028,904" in text
    assert max(r[0].count("· ") for r in rows) == 2
    with pytest.raises(ValueError, match="summary depth"):
        service.summary_rows(selection, summary_depth=0)


def test_formatting():
    assert fmt.count(88_791_336) == "88,791,336"
    assert fmt.scaled(16_414_015_488, "MACs") == "16.41 GMACs"
    assert fmt.scaled(950_000, "B") == "950 kB"
    assert fmt.byte_size(100_115_616) == "100.1 MB"
    # 32x8d-class weights in GB, not "32,796.6 MB"; small files in kB.
    assert fmt.byte_size(32_796_600_000) == "32.8 GB"
    assert fmt.byte_size(512_300) == "512 kB" and fmt.byte_size(12) == "12 B"
    assert fmt.percent_change(110, 100) == "+10.0 %"


def test_summary_files_are_named_by_content_and_bounded(tmp_path):
    first = downloads.write_download("a", "resnext-summary", ".txt", tmp_path, keep=3)
    assert downloads.write_download("a", "resnext-summary", ".txt", tmp_path, keep=3) == first
    for text in "bcdef":
        downloads.write_download(text, "resnext-summary", ".txt", tmp_path, keep=3)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 3
    assert {f.read_text() for f in files} == {"d", "e", "f"}


def test_summary_refuses_networks_with_too_many_modules():
    from explorer.shared.memory import MAX_MODULES

    wide_a = resnext.ResNeXtConfig(cardinality=128, bottleneck_width=4, stage_blocks=(64,) * 6,
                                   block_form="a")
    assert resnext.module_count(wide_a) > MAX_MODULES
    with pytest.raises(ValueError, match=r"has [\d,]+ modules, over the limit of 20,000\. "
                                         r"Form \(c\) computes the same function"):
        service.summary_rows(Selection(wide_a, 224))
    # The same network in form (c) is summarised (384 blocks: a few seconds at most).
    assert resnext.module_count(wide_a.replace(block_form="c")) < MAX_MODULES


def test_view_is_one_complexity_report_drawn_everywhere():
    selection = sel("resnext101_32x8d")
    view = service.view(selection, "resnet50")
    assert view.headline.params == 88_791_336
    assert "88,791,336" in view.headline_html
    assert view.stage_rows[-1][5:] == ["88,791,336", "16,414,015,488"]
    assert view.seed_note == "" and view.link.startswith("?config=")
    seed = service.view(sel("seed_resnext152", 224))
    # The seed's "152" layout, named once in the library, against the paper's (Table 1).
    assert "(3, 4, 36, 3)" in seed.seed_note and "(3, 8, 36, 3)" in seed.seed_note


@pytest.mark.parametrize("depth,stem,expected", [
    # Into the paper's CIFAR setting (Sec. 5.2): stem, 32 px and 10 classes come along.
    ("29", "imagenet", ((3, 3, 3), "cifar", 32, 10, True)),
    # Back to an ImageNet depth (Table 1).
    ("50", "cifar", ((3, 4, 6, 3), "imagenet", 224, 1000, True)),
    # Within one setting only the layout changes: the user's size and classes stay.
    ("101", "imagenet", ((3, 4, 23, 3), "imagenet", 320, 37, False)),
])
def test_depth_setting_brings_the_papers_setting(depth, stem, expected):
    setting = service.depth_setting(depth, stem, 320, 37)
    blocks, new_stem, size, classes, noted = expected
    assert (setting.stage_blocks, setting.stem, setting.image_size, setting.num_classes) == (
        blocks, new_stem, size, classes)
    assert bool(setting.note) == noted
    with pytest.raises(ValueError, match="depth must be one of"):
        service.depth_setting("77", stem, 224, 1000)
