"""DPGD work is sharded across ranks and gathered: shares cover every item once, in order, on every rank; the
ranks of one machine (and only those) share its pixel cache, under one session every rank agrees on."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from segp_hf.run.distributed import gather_shards, machine_peers, shard_bounds


def test_shares_cover_every_item_once_in_order():
    for count in (0, 1, 5, 64, 65):
        for world in (1, 2, 3, 8):
            bounds = [shard_bounds(count, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1


COUNTS = (7, 1)  # 1: one rank's share is empty


def _rank(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    for count in COUNTS:
        lo, hi = shard_bounds(count, rank, world)
        local = torch.arange(lo, hi, dtype=torch.float32).unsqueeze(1).repeat(1, 3) * 10 + rank  # rank-tagged rows
        torch.save(gather_shards(local, count), f"{out}/rank{rank}-{count}.pt")
    torch.distributed.destroy_process_group()


def test_gather_shards_over_two_gloo_ranks(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_rank, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    for count in COUNTS:
        expected = torch.cat([torch.arange(lo, hi, dtype=torch.float32).unsqueeze(1).repeat(1, 3) * 10 + r
                              for r, (lo, hi) in enumerate(shard_bounds(count, r, 2) for r in range(2))])
        for rank in range(2):
            assert torch.equal(torch.load(tmp_path / f"rank{rank}-{count}.pt"), expected)


HOSTS = ("node-a", "node-a", "node-b", "node-b")  # two machines of two ranks each, as their hostnames say


def _peers_rank(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    socket.gethostname = lambda: HOSTS[rank]  # this spawned process stands for a rank on that machine
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    peers = machine_peers(world)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(
        {"share": peers.share, "session": peers.session, "disk": str(peers.cache_dir("/runs/x")),
         "shm": str(peers.shm_dir())}))
    torch.distributed.destroy_process_group()


def test_ranks_share_a_cache_with_the_ranks_of_their_own_machine_only(tmp_path):
    """Multi-node: the ranks of each host share one pixel cache (once per node), in files named by the host and
    by one session all ranks agree on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_peers_rank, args=(4, port, str(tmp_path)), nprocs=4, join=True)
    seen = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(4)]
    assert [tuple(s["share"]) for s in seen] == [(0, 2), (1, 2), (0, 2), (1, 2)]
    assert len({s["session"] for s in seen}) == 1
    session = seen[0]["session"]
    assert [s["disk"] for s in seen] == [f"/runs/x/pixel-cache/{host}-{session}" for host in HOSTS]
    assert [s["shm"] for s in seen] == [f"/dev/shm/segp-hf-{host}-{session}" for host in HOSTS]


def test_one_process_keeps_its_cache_where_it_always_was():
    peers = machine_peers(1)
    assert peers.share == (0, 1) and peers.shm_dir() is None
    assert peers.cache_dir("/runs/x") == Path("/runs/x/pixel-cache")
