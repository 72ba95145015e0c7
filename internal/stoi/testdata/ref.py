# The reference figures of stoi_test.go: pystoi 0.4.1's STOI and ESTOI for
# fixed inputs. Run with numpy and scipy (Debian: python3-numpy
# python3-scipy) and pystoi 0.4.1 on PYTHONPATH:
#   PYTHONPATH=path/to/pystoi python3 testdata/ref.py
import math
import numpy as np
from pystoi import stoi

M64 = (1 << 64) - 1
def lcg_noise(n, seed):
    s = seed & M64
    out = np.empty(n)
    for i in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) & M64
        out[i] = (s >> 11) / float(1 << 53) * 2 - 1
    return out

def speech(n, rate):
    out = np.zeros(n)
    for i in range(n):
        t = i / rate
        if math.fmod(t, 1.0) > 0.7:
            continue
        f0 = 120 + 30 * math.sin(2 * math.pi * 0.5 * t)
        env = abs(math.sin(2 * math.pi * 3 * t))
        v = 0.0
        for h in range(1, 12):
            v += math.sin(2 * math.pi * f0 * h * t) / h
        out[i] = env * v
    return out

cases = []
for rate in (8000, 10000, 16000):
    n = int(rate * 3.1)
    x = speech(n, rate)
    noise = lcg_noise(n, 7)
    px = np.sqrt(np.mean(x ** 2)); pn = np.sqrt(np.mean(noise ** 2))
    for snr in (-10, -5, 0, 5):
        y = x + noise * (px / pn) / 10 ** (snr / 20)
        ym = x + noise * (px / pn) / 10 ** (snr / 20) * np.array([2.0 if math.fmod(i / rate, 0.25) < 0.125 else 0.2 for i in range(n)])
        for name, deg in (("steady", y), ("modulated", ym)):
            s = stoi(x, deg, rate)
            np.random.seed(0)
            e = stoi(x, deg, rate, extended=True)
            print(f"{{{rate}, {snr}, \"{name}\", {s:.6f}, {e:.6f}}},")
