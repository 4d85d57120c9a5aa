"""nbval runs the chapters on the embedded pair on the CPU, also on a machine with a
GPU: the checked outputs were committed from that pair (the kernels inherit these)."""

import os

os.environ["DYNATREE_PAIR"] = "embedded"
os.environ["DYNATREE_DEVICE"] = "cpu"
