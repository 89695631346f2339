#!/usr/bin/python3
"""torch.distributed gloo allreduce, for troupe-bench allreduce.

usage: allreduce_torch.py RANKS SIZE,SIZE,...   prints "bytes p50_us" per size (rank 0).
"""
import os
import socket
import sys
import time


def worker(rank, world, sizes, port, out):
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=world, rank=rank)
    for nbytes in sizes:
        t = torch.full((nbytes // 4,), 0.5, dtype=torch.float32)
        iters = int(min(max(3e8 / nbytes, 5), 2000))
        dist.barrier()
        for _ in range(max(2, iters // 10)):
            dist.all_reduce(t)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            dist.all_reduce(t)
            times.append((time.perf_counter() - t0) * 1e6)
        times.sort()
        if rank == 0:
            out.put((nbytes, times[len(times) // 2]))
    dist.destroy_process_group()


def main():
    import torch.multiprocessing as mp
    world = int(sys.argv[1])
    sizes = [int(s) for s in sys.argv[2].split(",")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, world, sizes, port, q)) for r in range(world)]
    for p in procs:
        p.start()
    for _ in sizes:
        nbytes, p50 = q.get(timeout=1800)
        print(nbytes, f"{p50:.2f}", flush=True)
    for p in procs:
        p.join()


if __name__ == "__main__":
    main()
