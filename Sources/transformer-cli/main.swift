import Transformer
print(Tensor.ones([2]))
