"""The IR's ops, one module per family. Each op is a dataclass (:class:`Op`) with its fields, its
own verification and its golden model; importing this package registers them all."""

from ._base import Op
from .activation import Lut, Pwl
from .dense import Dense
from .elementwise import Relu, Requant, Threshold
from .merge import Concat, Merge
from .recurrent import GRU, LSTM, SimpleRNN
from .softmax import Softmax
from .spatial import Conv, Gather, Pool, Reshape

__all__ = ["Op", "Dense", "Relu", "Requant", "Threshold", "Conv", "Pool", "Gather", "Reshape", "Merge", "Concat", "Lut", "Pwl", "Softmax", "SimpleRNN", "LSTM", "GRU"]
