"""After training: a finished job's model, evaluated, used and exported.

``job.TrainedModel`` finds what a job produced (adapter or full weights, the base model, the data and settings it
trained with) and loads it with the recipe's own pieces (``components/finetune/src``: model resolution, tokenizer,
the Phi-3 chat rendering and loss masks). ``generate`` is batched greedy decoding with the KV cache, ``evaluate`` the
base-vs-tuned comparison and its report, ``export`` the merged or adapter-only model folder.

Heavy libraries (torch, transformers, peft, mlflow) are imported inside functions only.
"""
