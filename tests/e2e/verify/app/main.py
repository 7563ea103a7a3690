import torch

print("torch", torch.__version__)
