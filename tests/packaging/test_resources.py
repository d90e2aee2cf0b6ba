"""azft.resources: the one place that says where the shipped components and pipelines are."""

from __future__ import annotations

import pytest
import yaml

from azft import resources
from azft.errors import UsageError


def test_every_component_and_pipeline_is_found_and_its_references_resolve():
    names = resources.component_names()
    assert {"finetune", "validate_data", "evaluate", "register_model"} <= set(names)
    for name in names:
        path = resources.component_file(name)
        doc = yaml.safe_load(path.read_text())
        code = (path.parent / str(doc.get("code", "."))).resolve()
        assert code.is_dir(), f"{path}: code {doc.get('code')} does not resolve"
        for inc in doc.get("additional_includes") or []:
            target = (path.parent / inc).resolve()
            assert target == resources.PACKAGE_DIR, f"{path}: additional include {inc} is not the azft package"
    for name in ("finetune.yml", "registry_chat_completion.yml"):
        assert resources.pipeline_file(name).is_file()
    assert (resources.environments_dir() / "runtime.conda.yml").is_file()
    assert resources.layout() in ("installed", "checkout")
    files = resources.asset_files()
    assert resources.component_file("finetune") in files and not any("__pycache__" in str(p) for p in files)


def test_unknown_names_say_what_exists():
    with pytest.raises(UsageError) as e:
        resources.component_file("nope")
    assert "finetune" in e.value.hint
    with pytest.raises(UsageError) as e:
        resources.pipeline_file("nope.yml")
    assert "finetune.yml" in e.value.hint
