"""Plugin discovery: built-ins, entry points, duplicates, misspelled hooks, the env switch."""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pluggy
import pytest

import mmalign
from mmalign import hooks, plugins
from mmalign.errors import PluginError

FIXTURE = Path(__file__).parent / "fixtures" / "mmalign_toy_plugin"


def test_builtin_plugins_register_the_builtin_modalities_and_losses():
    registry = mmalign.get_catalog(refresh=True)
    assert {"image_features", "attributes", "sentences"} <= set(registry.entries)
    assert registry.entries["image_features"].plugin == "mmalign_plugins.image_features"
    assert list(registry.losses) == ["recon", "kl", "cross", "align", "contrastive"]
    assert registry.loss_plugins["contrastive"] == "mmalign_plugins.contrastive"
    hooks_of = {p.name: p.hooks for p in registry.plugins.values() if p.builtin}
    assert hooks_of["mmalign_plugins.image_features"] == ["register_modalities"]
    assert hooks_of["mmalign_plugins.cada_losses"] == ["register_losses"]


def test_every_hook_is_documented():
    for name, fn in inspect.getmembers(hooks.MmalignHooks, inspect.isfunction):
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, name


def _manager_with(*modules):
    pm = pluggy.PluginManager(hooks.PROJECT)
    pm.add_hookspecs(hooks.MmalignHooks)
    infos = {}
    for name, module in modules:
        pm.register(module, name=name)
        infos[name] = plugins.PluginInfo(name, "1.0", builtin=False)
    return pm, infos


class _Dup:
    class Mod(mmalign.FeatureModality):
        kind = "attributes"
        granularity = "class"

    @staticmethod
    @mmalign.hookimpl
    def register_modalities(register):
        register(_Dup.Mod())


def test_duplicate_modality_key_names_both_plugins():
    import mmalign_plugins.class_embeddings as builtin

    pm, infos = _manager_with(("mmalign_plugins.class_embeddings", builtin), ("other_plugin", _Dup))
    with pytest.raises(PluginError) as err:
        plugins.build_catalog(pm, infos)
    assert "mmalign_plugins.class_embeddings" in str(err.value) and "other_plugin" in str(err.value)
    assert "'attributes'" in str(err.value)


class _Misspelled:
    @staticmethod
    @mmalign.hookimpl
    def register_modality(register):  # missing the trailing "s"
        pass


def test_misspelled_hook_fails_loudly(monkeypatch):
    original = plugins.BUILTIN_PLUGINS
    monkeypatch.setitem(sys.modules, "misspelled_plugin", _Misspelled)
    monkeypatch.setattr(plugins, "BUILTIN_PLUGINS", original + ("misspelled_plugin",))
    with pytest.raises(PluginError, match="register_modality"):
        plugins.build_plugin_manager()


def test_unknown_modality_key_is_a_clear_error():
    with pytest.raises(PluginError, match="'imagefeatures'.*registered keys"):
        mmalign.Aligner(["imagefeatures", "attributes"])


@pytest.fixture(scope="module")
def installed_toy_plugin(tmp_path_factory):
    """Install the third-party plugin distribution under tests/fixtures into a private folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(target), str(FIXTURE)],
        check=True, capture_output=True,
    )
    return target


def _run(code, site, **env):
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env)


def test_entry_point_plugin_is_discovered_and_trains(installed_toy_plugin):
    code = (
        "import json, numpy as np, mmalign, sys\n"
        "sys.path.insert(0, %r)\n"
        "from conftest import make_toy_data\n"
        "reg = mmalign.get_catalog()\n"
        "d = make_toy_data()\n"
        "rng = np.random.default_rng(0)\n"
        "d.sample_features['audio'] = rng.random((d.num_samples, 6)).astype('float32') + d.labels[:, None]\n"
        "a = mmalign.Aligner(['toy_audio', {'kind': 'image_features', 'hidden': (32, 24)}, {'kind': 'attributes', 'hidden': (32, 24)}],\n"
        "    {'training': {'epochs': 2, 'batch_size': 16}, 'latent_size': 8})\n"
        "h = a.fit(d, progress=False)\n"
        "print(json.dumps({'plugin': reg.entries['toy_audio'].plugin, 'version': reg.entries['toy_audio'].plugin_version,\n"
        "                  'terms': sorted(h[-1].terms)}))\n"
    ) % str(Path(__file__).parent)
    out = _run(code, installed_toy_plugin)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["plugin"] == "toy" and result["version"] == "0.3.1"
    assert "cross/toy_audio->image_features" in result["terms"]


def test_env_switch_limits_entry_point_plugins(installed_toy_plugin):
    code = "import mmalign; print(sorted(mmalign.get_catalog().entries))"
    allowed = _run(code, installed_toy_plugin, MMALIGN_PLUGINS="toy")
    blocked = _run(code, installed_toy_plugin, MMALIGN_PLUGINS="")
    assert "toy_audio" in allowed.stdout
    assert "toy_audio" not in blocked.stdout and "image_features" in blocked.stdout


def test_cli_plugins_lists_plugins_as_text_and_json(installed_toy_plugin):
    out = _run("import sys; from mmalign.cli import main; sys.exit(main(['plugins', '--json']))", installed_toy_plugin)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["toy"]["version"] == "0.3.1" and rows["toy"]["modalities"] == ["toy_audio"]
    assert rows["toy"]["hooks"] == ["register_modalities"] and rows["toy"]["builtin"] is False
    text = _run("import sys; from mmalign.cli import main; sys.exit(main(['plugins']))", installed_toy_plugin)
    assert "toy 0.3.1 (entry point)" in text.stdout and "modalities: toy_audio" in text.stdout
