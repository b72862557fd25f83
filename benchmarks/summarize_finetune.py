"""One markdown table of several ``bench_finetune.py`` results, with means.

Fine-tuning on a handful of painted images is noisy: which images are
painted (``--seed``) moves the gain by more than most settings do, so a
setting is judged on several seeds. Run the benchmark once per seed, then::

    python benchmarks/summarize_finetune.py \\
        benchmarks/results/finetune_balanced_seed*.json

prints one row per file (seed, what was painted, steps, fitted thresholds,
before -> after on the never-painted images, the control "parent with
thresholds fitted, no training", and the change on the original
validation images) and the mean over the files.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def summary_row(result: dict) -> dict:
    """The numbers of one result file that the table shows."""
    other = next(k for k in result['after'] if k.endswith('_other'))
    before = result['before'][other]['accuracy']
    after = result['after'][other]['accuracy']
    control = result.get('before_thresholds_fitted') or {}
    chosen = (result.get('thresholds') or {}).get('chosen', {})
    painting = result['painting']
    row = {
        'seed': int(re.search(r'--seed (\d+)', result['command']).group(1)),
        'painted': (
            f'{painting["objects_painted"]} + '
            f'{painting["false_positives_painted_as_background"]}, '
            f'{100 * painting["painted_fraction"]:.2f} %'
        ),
        'steps': result['finetune']['steps'],
        'fitted': (
            f'{chosen["fg_threshold"]}, {chosen["min_size"]} px'
            if chosen
            else '-'
        ),
        'before': before,
        'after': after,
        'gain': after - before,
        'control_gain': (
            control[other]['accuracy'] - before if other in control else None
        ),
        'original_change': None,
    }
    if 'nuclei2d_validation' in result['after']:
        row['original_change'] = (
            result['after']['nuclei2d_validation']['accuracy']
            - result['before']['nuclei2d_validation']['accuracy']
        )
    return row


def _signed(value: float | None) -> str:
    return '-' if value is None else f'{value:+.3f}'


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def markdown_table(rows: list[dict]) -> str:
    """Rows of :func:`summary_row` and their mean as a markdown table."""
    lines = [
        '| seed | painted (objects + false detections, pixels) | steps '
        '| fitted | before → after | gain | thresholds fitted, no training '
        '| original images |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        lines.append(
            f'| {r["seed"]} | {r["painted"]} | {r["steps"]} | {r["fitted"]} '
            f'| {r["before"]:.3f} → {r["after"]:.3f} | {_signed(r["gain"])} '
            f'| {_signed(r["control_gain"])} '
            f'| {_signed(r["original_change"])} |'
        )
    lines.append(
        f'| **mean of {len(rows)}** | | | | '
        f'| **{_signed(_mean([r["gain"] for r in rows]))}** '
        f'| {_signed(_mean([r["control_gain"] for r in rows]))} '
        f'| **{_signed(_mean([r["original_change"] for r in rows]))}** |'
    )
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('results', nargs='+', type=Path)
    args = parser.parse_args()
    rows = [summary_row(json.loads(p.read_text())) for p in args.results]
    print(markdown_table(sorted(rows, key=lambda r: r['seed'])))


if __name__ == '__main__':
    main()
