"""Training data checks per task, token statistics, splits and conversions (``azft data check|stats|split|convert``).

Imports here stay light (orjson, stdlib); tokenizers, numpy and transformers load only when used.
"""

from azft.data.check import MAAS_MAX_FILE_BYTES, check_file
from azft.data.convert import ConvertReport, convert_file
from azft.data.report import DataProblem, DataReport, DataStats, TokenStats
from azft.data.split import split_file
from azft.data.tasks import TASKS, detect_task
from azft.data.tokens import TokenizerSpec, load_tokenizer

__all__ = [
    "MAAS_MAX_FILE_BYTES",
    "TASKS",
    "ConvertReport",
    "DataProblem",
    "DataReport",
    "DataStats",
    "TokenStats",
    "TokenizerSpec",
    "check_file",
    "convert_file",
    "detect_task",
    "load_tokenizer",
    "split_file",
]
