"""MLflow pyfunc wrapper for an azft fine-tuned model (registered "from code": this file travels with the model).

The model folder is the fine-tune output, unchanged: a PEFT adapter (loaded on top of the base model named in the
model config) or full weights. ``predict`` takes prompts (a list of strings, or a DataFrame with a ``prompt``
column, or chat ``messages``) and returns the generated text for each.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel


class AzftCausalLM(PythonModel):
    def load_context(self, context):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(context.artifacts["model_dir"])
        config = dict(context.model_config or {})
        self.max_new_tokens = int(config.get("max_new_tokens", 256))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if (model_dir / "adapter_config.json").is_file():
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(config["base_model"])
            self.model = PeftModel.from_pretrained(base, str(model_dir))
        else:
            self.model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        self.model.to(self.device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _prompts(self, model_input) -> list:
        if hasattr(model_input, "to_dict"):  # pandas DataFrame
            column = "prompt" if "prompt" in model_input.columns else model_input.columns[0]
            return list(model_input[column])
        if isinstance(model_input, (str, dict)):
            return [model_input]
        return list(model_input)

    def predict(self, context, model_input, params=None):
        import torch

        max_new = int((params or {}).get("max_new_tokens", self.max_new_tokens))
        outputs = []
        for item in self._prompts(model_input):
            if isinstance(item, dict) and "messages" in item:
                item = item["messages"]
            if isinstance(item, list) and getattr(self.tokenizer, "chat_template", None):
                text = self.tokenizer.apply_chat_template(item, tokenize=False, add_generation_prompt=True)
            else:
                text = str(item)
            ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.device)
            with torch.no_grad():
                out = self.model.generate(
                    **ids, max_new_tokens=max_new, do_sample=False, pad_token_id=self.tokenizer.pad_token_id
                )
            outputs.append(self.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))
        return outputs


mlflow.models.set_model(AzftCausalLM())
