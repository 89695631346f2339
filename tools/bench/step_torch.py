# PyTorch's side of `troupe-bench step`: the same MLP step, printed as
# "device threads batch samples_per_s" lines.
#   python3 step_torch.py THREADS BATCHES(,..) SECONDS CUDA(0|1)
# The caller sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS to THREADS.
import sys
import time

import torch


def model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                               torch.nn.ReLU(), torch.nn.Linear(1024, 10))


def measure(device, batch, seconds):
    m = model().to(device)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 784, device=device) * 2 - 1
    y = torch.randint(0, 10, (batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(m(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(5):
        step()
    sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
    sync()
    steps, start = 0, time.perf_counter()
    while True:
        for _ in range(10):
            step()
        steps += 10
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps * batch / elapsed


def main():
    t = int(sys.argv[1])
    batches = [int(b) for b in sys.argv[2].split(",")]
    seconds = float(sys.argv[3])
    torch.set_num_threads(t)
    print(f"cpu {t} 128 {measure('cpu', 128, seconds):.1f}", flush=True)
    if sys.argv[4] == "1" and torch.cuda.is_available():
        for b in batches:
            print(f"cuda 0 {b} {measure('cuda', b, seconds):.1f}", flush=True)


if __name__ == "__main__":
    main()
