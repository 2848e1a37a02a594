"""Commands on datasets: synth, validate, pack, analyze."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from hpa_classify.cli.app import (
    ChannelsOpt,
    DataArg,
    ImagesOpt,
    IntensityOpt,
    SkipOpt,
    SplitOpt,
    app,
    console,
    load_data,
    progress_bars,
)
from hpa_classify.errors import HPAError


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the Kaggle-layout dataset into.")],
    n: Annotated[int, typer.Option("--n", help="Training images.")] = 800,
    n_test: Annotated[int, typer.Option("--n-test", help="Test images (labels in test_labels.csv).")] = 200,
    size: Annotated[int, typer.Option(help="Image side, px.")] = 128,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
    class_alpha: Annotated[float, typer.Option(help="Class frequency exponent: 1 = real HPA imbalance, 0 = uniform.")] = 0.5,
    min_per_class: Annotated[int, typer.Option(help="Every class at least this often per split.")] = 2,
    workers: Annotated[Optional[int], typer.Option(help="Processes (default: all cores).")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Also write OUT/preview.png: one example per class.")] = False,
    masks: Annotated[bool, typer.Option("--masks", help="Also write the true nucleus and cell label images and each cell's labels into OUT/masks/.")] = False,
    pattern_masks: Annotated[bool, typer.Option("--pattern-masks", help="Also write where each class's pattern lies: OUT/masks/{Id}_pattern_{class}.png.")] = False,
    synth_version: Annotated[int, typer.Option("--synth-version", help="1: a few cells showing every label; 2: 10-40 crowded cells, some negative or showing a subset, yellow needed.")] = 1,
) -> None:
    """Write a synthetic HPA-like dataset in Kaggle layout (no download needed)."""
    from hpa_classify.analysis.preview import preview as draw_preview
    from hpa_classify.data.synth import generate

    summary = generate(
        out, n_train=n, n_test=n_test, size=size, seed=seed, class_alpha=class_alpha,
        min_per_class=min_per_class, workers=workers, progress=progress_bars(), masks=masks,
        pattern_masks=pattern_masks, version=synth_version,
    )
    console.print(f"wrote {summary.n_train} train and {summary.n_test} test images ({size} px, version "
                  f"{synth_version}) to {out}" + (f", true labels in {Path(out) / 'masks'}" if masks or pattern_masks else ""))
    if preview:
        png = draw_preview(Path(out) / "preview.png", size=max(size, 128), seed=seed, version=synth_version)
        console.print(f"contact sheet: {png}")


@app.command()
def validate(
    data: DataArg,
    images: ImagesOpt = None,
    deep: Annotated[bool, typer.Option("--deep", help="Decode every image, not just headers and file ends.")] = False,
    split: Annotated[str, typer.Option(help="Which CSV of a Kaggle root to check: train or test.")] = "train",
    channels: ChannelsOpt = None,
) -> None:
    """Check a dataset (CSV, labels, every channel file) without changing anything."""
    from hpa_classify.data.io import parse_channel_map
    from hpa_classify.data.layout import load_dataset, require_images
    from hpa_classify.data.layout import validate as run_validate

    t0 = time.perf_counter()
    ds = load_dataset(data, images, prefer=split, channel_map=parse_channel_map(channels) if channels else None)
    require_images(ds)
    report = run_validate(ds, deep=deep)
    sizes = ", ".join(f"{w}x{h}: {c}" for (w, h), c in sorted(report.sizes.items()))
    console.print(f"{ds.csv_path}: {len(ds)} samples, images in {ds.image_dir}; sizes {sizes or '-'} "
                  f"({time.perf_counter() - t0:.1f} s)")
    if not report.ok:
        raise HPAError(report.message())
    console.print("[green]all samples valid[/green]")


@app.command()
def pack(
    data: Annotated[Path, typer.Argument(help="Dataset to pack (as for 'hpa train'); with --verify, the pack folder.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Pack folder to write (resumes an unfinished one).")] = None,
    size: Annotated[int, typer.Option(help="Side every image is resized to, px (use the data.size you train at).")] = 512,
    images: ImagesOpt = None,
    split: Annotated[str, typer.Option(help="Which CSV of a Kaggle root to pack: train or test.")] = "train",
    workers: Annotated[Optional[int], typer.Option(help="Decoding processes (default: all cores).")] = None,
    shard_mb: Annotated[int, typer.Option("--shard-mb", help="Largest shard file, MiB.")] = 1024,
    force: Annotated[bool, typer.Option("--force", help="Replace a pack of other data or another size in OUT.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Check DATA, a pack folder, against its checksums; write nothing.")] = False,
    skip_invalid: SkipOpt = False,
    channels: ChannelsOpt = None,
    intensity: IntensityOpt = None,
) -> None:
    """Decode and resize a dataset once into memory-mapped uint8 shards, for fast training and prediction."""
    from hpa_classify.data import pack as pack_mod

    if verify:
        meta = pack_mod.open_pack(data)
        bad = pack_mod.verify_pack(data, progress=progress_bars())
        if bad:
            raise HPAError(f"{data}: {len(bad)} shards do not match their checksums: {', '.join(bad)}; pack again with --force")
        console.print(f"{data}: {len(meta)} samples at {meta.side} px, all {len(meta.shard_files)} shards match their checksums")
        return
    if out is None:
        raise HPAError("hpa pack needs --out/-o, the pack folder to write")
    ds = load_data(data, images, split, skip_invalid, channels=channels, intensity=intensity)
    t0 = time.perf_counter()
    s = pack_mod.pack(ds, out, size=size, workers=workers, shard_bytes=shard_mb << 20, force=force,
                      progress=progress_bars())
    dt = time.perf_counter() - t0
    kept = f", {s.kept_shards} kept from an earlier run" if s.kept_shards else ""
    console.print(f"packed {s.n_samples} samples at {s.size} px into {s.root} ({s.n_shards} shards, "
                  f"{s.bytes / 2**30:.2f} GiB{kept}) in {dt:.1f} s; use it as DATA for 'hpa train' and 'hpa predict'")


@app.command()
def analyze(
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.html, stats.json, normalization.yaml, figures/.")],
    images: ImagesOpt = None,
    max_images: Annotated[int, typer.Option("--max-images", help="Images decoded (at random) for the intensity statistics.")] = 500,
    min_count: Annotated[int, typer.Option("--min-count", help="Warn about classes with fewer images (20: under 4 per fold in 5-fold CV).")] = 20,
    per_class: Annotated[int, typer.Option("--per-class", help="Example images per class in the montages.")] = 6,
    split: SplitOpt = "train",
    seed: Annotated[int, typer.Option(help="Seed of the random choices.")] = 0,
    channels: ChannelsOpt = None,
    intensity: IntensityOpt = None,
) -> None:
    """Analyse a dataset (labels, and images when found) into a self-contained HTML report."""
    from hpa_classify.analysis.analyze import analyze as run_analyze
    from hpa_classify.data.io import parse_channel_map
    from hpa_classify.data.layout import load_dataset

    ds = load_dataset(data, images, prefer=split, channel_map=parse_channel_map(channels) if channels else None)
    result = run_analyze(ds, out, max_images=max_images, min_count=min_count, per_class=per_class,
                         seed=seed, progress=progress_bars(), intensity=intensity)
    source = result.stats["source"]
    console.print(f"{source['csv']}: {source['n_samples']} samples; analysed in {result.stats['seconds']:.1f} s")
    depth = result.stats.get("bit_depth")
    if depth:
        declared = f", declared {depth['declared_bits']} bits" if depth.get("declared_bits") else ""
        console.print(f"bit depth: {depth['container_bits']}-bit files{declared}, values up to {depth['max_value']} "
                      f"({depth['value_bits']} bits); read as {depth['chosen']['spec']}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    console.print(f"wrote {result.html} and {result.stats_json}"
                  + (f"; normalisation: {result.normalization}" if result.normalization else ""))
