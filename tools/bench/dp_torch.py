# PyTorch DDP's side of `troupe-bench dp`: the same MLP, data, batch and
# optimizer, gloo, one thread per process. Prints one line:
#   replicas samples_per_s seconds_to_target final_acc
#   python3 dp_torch.py REPLICAS EPOCHS BATCH LR MOMENTUM TARGET DATA_DIR HIDDEN(,..) [SEED]
import gzip
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(d):
    xtr = read_idx(f"{d}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    ytr = read_idx(f"{d}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = read_idx(f"{d}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    yte = read_idx(f"{d}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    mean, std = xtr.mean(), xtr.std()
    return [torch.from_numpy(a) for a in ((xtr - mean) / std, ytr, (xte - mean) / std, yte)]


def worker(rank, world, port, args, out):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    epochs, batch, lr, momentum, target, data_dir, hidden, seed = args
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    xtr, ytr, xte, yte = load(data_dir)
    torch.manual_seed(seed)
    layers, width = [], 784
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 10))
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(*layers))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    sampler = torch.utils.data.distributed.DistributedSampler(range(len(xtr)), num_replicas=world, rank=rank, seed=seed)
    loss_fn = torch.nn.CrossEntropyLoss()
    dist.barrier()
    start, samples, reached, acc = time.perf_counter(), 0, -1.0, 0.0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        idx = torch.tensor(list(sampler))
        for b in range(len(idx) // batch):
            sel = idx[b * batch:(b + 1) * batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xtr[sel]), ytr[sel]).backward()
            opt.step()
            samples += batch
        if rank == 0:
            with torch.no_grad():
                acc = (model.module(xte).argmax(1) == yte).float().mean().item()
            if acc >= target and reached < 0:
                reached = time.perf_counter() - start
        dist.barrier()
    elapsed = time.perf_counter() - start
    if rank == 0:
        out.put((samples * world / elapsed, reached, acc))
    dist.destroy_process_group()


def main():
    replicas, epochs, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    lr, momentum, target = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    data_dir, hidden = sys.argv[7], [int(h) for h in sys.argv[8].split(",")]
    seed = int(sys.argv[9]) if len(sys.argv) > 9 else 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    args = (epochs, batch, lr, momentum, target, data_dir, hidden, seed)
    procs = [ctx.Process(target=worker, args=(r, replicas, port, args, out)) for r in range(replicas)]
    for p in procs:
        p.start()
    sps, reached, acc = out.get()
    for p in procs:
        p.join()
    print(f"{replicas} {sps:.1f} {reached:.2f} {acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
