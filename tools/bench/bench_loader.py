#!/usr/bin/env python3
"""Loader throughput on a prepared HDF5 store: emotune's loader vs a PyTorch DataLoader.

Both sides read the same store (written by `bench_loader prepare`: synthetic faces at 336 px,
exact 136-value landmarks, template "plain", deflate 4 with shuffle, one chunk per image)
and do the same work per epoch: a shuffled order, each sample's token ids and labels, its
u8 [336, 336, 3] crop -> f32 [3, 336, 336] normalized with the CLIP mean/std, its landmark
row and id string; batches of 16 (drop_last).
  emotune  build/bench_loader run STORE 2 16: et_loader_new_store, 2 worker threads,
           prefetch 4 batches; a batch holds ids/labels per sample (no padding), pixels
           [16, 3, 336, 336], landmarks [16, 136].
  peer     torch.utils.data.DataLoader(num_workers=2, batch_size=16, shuffle=True,
           drop_last=True) over a Dataset that opens the file with h5py in each worker and
           reads the same slices (offsets loaded once, like emotune), normalizes with torch
           (x / 255 - mean) / std, and a collate_fn that pads ids (0) and labels (-100) to the
           batch's longest sample and stacks pixels and landmarks.
Each round times one full epoch per side, including worker start-up (emotune's loader starts
its threads on the first batch; the DataLoader forks its workers on iteration). Rounds
alternate the two sides; the best round of each is reported, with every round listed.
Requires: torch, h5py, numpy (pip install h5py).
Usage: python3 tools/bench/bench_loader.py [--bin build/bench_loader] [--store /tmp/bench_loader.h5]
       [--n 800] [--rounds 5] [--keep]
"""
import argparse
import os
import re
import subprocess
import sys
import time

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)


class StoreDataset(Dataset):
    def __init__(self, path):
        self.path = path
        with h5py.File(path, "r") as f:
            self.n = int(f.attrs["num_samples"])
            self.tok = f["tok_offset"][:]
            self.img = f["img_offset"][:]
            self.str = f["str_offset"][:]
            self.has_lm = f["has_landmarks"][:]
        self.f = None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.f is None:  # one handle per worker process
            self.f = h5py.File(self.path, "r")
        f = self.f
        t0, t1 = self.tok[i], self.tok[i + 1]
        ids = torch.from_numpy(f["ids"][t0:t1])
        labels = torch.from_numpy(f["labels"][t0:t1])
        p0 = self.img[i]
        u8 = torch.from_numpy(f["pixels"][p0])  # [S, S, 3]
        pix = (u8.permute(2, 0, 1).float() / 255.0 - MEAN) / STD
        lm = torch.from_numpy(f["landmarks"][i])
        s0, s1 = self.str[i * 6], self.str[i * 6 + 1]
        sid = f["strings"][s0:s1].tobytes().decode()
        return ids, labels, pix, lm, sid


def collate(batch):
    n = max(b[0].numel() for b in batch)
    ids = torch.zeros(len(batch), n, dtype=torch.int32)
    labels = torch.full((len(batch), n), -100, dtype=torch.int32)
    for k, b in enumerate(batch):
        ids[k, : b[0].numel()] = b[0]
        labels[k, : b[1].numel()] = b[1]
    return ids, labels, torch.stack([b[2] for b in batch]), torch.stack([b[3] for b in batch]), \
        [b[4] for b in batch]


def worker_init(_):
    torch.set_num_threads(1)


def peer_epoch(path):
    t0 = time.perf_counter()
    dl = DataLoader(StoreDataset(path), batch_size=16, shuffle=True, drop_last=True,
                    num_workers=2, collate_fn=collate, worker_init_fn=worker_init)
    n = 0
    for ids, labels, pix, lm, sid in dl:
        n += pix.shape[0]
    return n, time.perf_counter() - t0


def emotune_epoch(binary, path):
    out = subprocess.run([binary, "run", path, "2", "16", "1"], check=True, capture_output=True,
                         text=True).stdout
    m = re.search(r"samples (\d+) seconds ([0-9.]+)", out)
    return int(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/bench_loader")
    ap.add_argument("--store", default="/tmp/bench_loader.h5")
    ap.add_argument("--n", type=int, default=800)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the store")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if not os.path.exists(a.store):
        subprocess.run([a.bin, "prepare", a.store, str(a.n)], check=True)
    # same samples on both sides
    ds = StoreDataset(a.store)
    ids, labels, pix, lm, sid = ds[0]
    print(f"store {a.store}: {len(ds)} samples, {os.path.getsize(a.store) / 1e6:.0f} MB, "
          f"sample 0 id {sid!r}, {ids.numel()} tokens, pixels {tuple(pix.shape)}")
    em, py = [], []
    for r in range(a.rounds):
        n, dt = emotune_epoch(a.bin, a.store)
        em.append(n / dt)
        n2, dt2 = peer_epoch(a.store)
        py.append(n2 / dt2)
        print(f"round {r}: emotune {em[-1]:.0f} samples/s ({n} in {dt:.2f} s), "
              f"PyTorch {py[-1]:.0f} samples/s ({n2} in {dt2:.2f} s)", flush=True)
    print()
    print("| loader (2 workers, batch 16, 336 px, deflate 4) | samples/s (best round) | rounds |")
    print("|---|---|---|")
    print(f"| emotune et_loader_new_store | {max(em):.0f} | {', '.join(f'{v:.0f}' for v in em)} |")
    print(f"| PyTorch DataLoader + h5py | {max(py):.0f} | {', '.join(f'{v:.0f}' for v in py)} |")
    print(f"\nratio emotune / PyTorch (best rounds): {max(em) / max(py):.2f}x; "
          f"medians: {np.median(em) / np.median(py):.2f}x")
    if not a.keep:
        os.remove(a.store)


if __name__ == "__main__":
    sys.exit(main())
