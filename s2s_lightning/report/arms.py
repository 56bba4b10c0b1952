"""Arms from run records: which config keys tell runs apart (the declared axes, and any key in which
runs of one declared arm differ), and each run's arm label and order (False before True, small first)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..config import AXES, RUN_ONLY_KEYS, flatten
from .labels import axis_value_label


def _significant(config: Any) -> dict[str, str] | None:
    """A run's config as {dotted key: value as JSON}, without RUN_ONLY_KEYS; None without a config."""
    if not isinstance(config, dict):
        return None
    return {
        k: json.dumps(v, sort_keys=True)
        for k, v in flatten(config).items()
        if not k.startswith(RUN_ONLY_KEYS) and not k.startswith("_")  # W&B's own entries start with _
    }


def undeclared_differences(configs: Sequence[Any], declared: pd.DataFrame) -> list[str]:
    """Config keys in which runs with the same declared axis values differ (a 1-epoch run beside
    16-epoch runs of its arm): those runs are not one arm, so these keys must tell them apart. Runs
    agree on everything else (the seed and RUN_ONLY_KEYS aside) when this is empty."""
    groups: dict[tuple, list[dict[str, str]]] = {}
    for config, values in zip(configs, declared.itertuples(index=False)):
        flat = _significant(config)
        if flat is not None:
            groups.setdefault(tuple(None if pd.isna(v) else v for v in values), []).append(flat)
    keys: dict[str, None] = {}
    for flats in groups.values():
        for flat in flats[1:]:
            for key in list(flats[0]) + [k for k in flat if k not in flats[0]]:
                if flat.get(key) != flats[0].get(key):
                    keys[key] = None
    return list(keys)


def _sort_key(values: tuple) -> tuple:
    return tuple((v is None, v if v is not None else 0) for v in values)


def name_arms(
    runs: pd.DataFrame, axes: Sequence[str] = AXES
) -> tuple[pd.DataFrame, list[str], dict[str, dict]]:
    """Label every run's arm by the axes that vary; order arms by axis values (False < True, small first)."""
    axes = list(axes)
    keys = [tuple(None if pd.isna(v) else v for v in row) for row in runs[axes].itertuples(index=False)]
    varying = [a for i, a in enumerate(axes) if len({k[i] for k in keys}) > 1]
    shown = [axes.index(a) for a in (varying or AXES)]
    labels, arm_axes = [], {}
    for key, name in zip(keys, runs["arm_name"]):
        if all(v is None for v in key):  # a record without axes: its own arm name is all we have
            label = str(name) if isinstance(name, str) else "unknown arm"
        else:
            label = " · ".join(axis_value_label(axes[i], key[i]) for i in shown)
        labels.append(label)
        arm_axes[label] = dict(zip(axes, key))
    order = sorted(set(labels), key=lambda lab: (_sort_key(tuple(arm_axes[lab].values())), lab))
    runs = runs.assign(
        arm=pd.Categorical(labels, categories=order, ordered=True),
        _seed=pd.to_numeric(runs["seed"], errors="coerce"),
    )
    runs = runs.sort_values(["arm", "_seed", "run_dir"], na_position="last").drop(columns="_seed")
    return runs.reset_index(drop=True), varying, arm_axes
