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
    assert list(registry.losses) == ["recon", "kl", "cross", "align", "contrastive", "joint_cross", "joint_align",
                                     "contrastive_align", "classify", "adversarial_align"]
    assert [f for f, t in registry.losses.items() if t.optional] == ["joint_cross", "joint_align"]
    assert registry.loss_plugins["contrastive"] == "mmalign_plugins.contrastive"
    assert registry.loss_plugins["adversarial_align"] == "mmalign_plugins.adversarial_alignment"
    assert registry.dataset("cub-latents").plugin == "mmalign_plugins.cub_latents"
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
    return install_into(tmp_path_factory.mktemp("site"), FIXTURE)


def install_into(target: Path, package: Path) -> Path:
    """pip-install a distribution folder into ``target`` (offline, no dependencies); returns it."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
         "--target", str(target), str(package)],
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
    assert "toy 0.3.1 (entry point, distribution mmalign-toy-plugin)" in text.stdout and "modalities: toy_audio" in text.stdout


EXTRAS = Path(__file__).parent / "fixtures" / "mmalign_extras_plugin"


@pytest.fixture(scope="module")
def installed_extras_plugin(tmp_path_factory):
    """The second third-party distribution: a data set, a sub-command, a module with no hook and a
    duplicate modality key, each behind its own entry point (chosen per test with MMALIGN_PLUGINS)."""
    return install_into(tmp_path_factory.mktemp("site_extras"), EXTRAS)


def _cli_run(site, *argv, **env):
    return _run(f"import sys; from mmalign.cli import main; sys.exit(main({list(argv)!r}))", site, **env)


def test_plugin_dataset_loads_checks_its_card_and_generates_synthetic_data(installed_extras_plugin):
    code = (
        "import json, mmalign\n"
        "from mmalign.datasets import load_dataset, load_card, synthetic_like\n"
        "d = load_dataset('TOYSET')\n"
        "s = synthetic_like('toyset', seed=0, feature_dim=8)\n"
        "print(json.dumps({'classes': d.num_classes, 'plugin': d.meta['plugin'], 'card': load_card('ToySet').name,\n"
        "                  'synthetic': [s.num_classes, s.class_features['attributes'].shape[1]]}))\n"
    )
    out = _run(code, installed_extras_plugin, MMALIGN_PLUGINS="extras")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"classes": 10, "plugin": "extras", "card": "TOYSET", "synthetic": [10, 5]}


def test_plugin_dataset_runs_through_the_benchmark_command(installed_extras_plugin, tmp_path):
    out = _cli_run(installed_extras_plugin, "benchmark", "ToySet", "--epochs", "1", "--classifier-epochs", "2",
                   "--no-progress", "--threads", "1", "--out", str(tmp_path), MMALIGN_PLUGINS="extras")
    assert out.returncode == 0, out.stderr
    records = json.loads((tmp_path / "results.json").read_text())
    assert [(r["dataset"], r["policy"], r["classifier_epochs"]) for r in records] == [("TOYSET", "manual", 2)]


def test_plugin_command_runs_and_reports_errors_in_one_line(installed_extras_plugin):
    ok = _cli_run(installed_extras_plugin, "toyset-info", MMALIGN_PLUGINS="extras")
    assert ok.returncode == 0, ok.stderr
    assert "toyset: 10 classes, 240 samples, plugin extras" in ok.stdout
    assert "sub-command 'train' already exists; skipped" in ok.stderr  # the taken name, not a crash
    bad = _cli_run(installed_extras_plugin, "toyset-info", "--classes", "-1", MMALIGN_PLUGINS="extras")
    assert bad.returncode == 2 and "mmalign: error: --classes must be non-negative, got -1" in bad.stderr
    assert "Traceback" not in bad.stderr
    listed = _cli_run(installed_extras_plugin, "plugins", "--json", MMALIGN_PLUGINS="extras")
    row = {r["name"]: r for r in json.loads(listed.stdout)}["extras"]
    assert row["hooks"] == ["register_commands", "register_datasets"] and row["datasets"] == ["toyset"]
    assert row["distribution"] == "mmalign-extras-plugin"


def test_trace_env_prints_every_hook_call_with_its_plugin(installed_extras_plugin):
    out = _run("import mmalign; mmalign.get_catalog()", installed_extras_plugin, MMALIGN_PLUGINS="extras",
               MMALIGN_TRACE_PLUGINS="1")
    assert out.returncode == 0, out.stderr
    assert "[mmalign plugins] register_modalities: calling built-in plugin 'mmalign_plugins.image_features'" in out.stderr
    assert "register_datasets: calling plugin 'extras' (distribution mmalign-extras-plugin 1.2.0)" in out.stderr
    assert "finish register_datasets" in out.stderr  # pluggy's own tracing sees the call too


def test_misspelled_plugin_name_in_the_env_warns_with_the_names_that_exist(installed_extras_plugin):
    out = _run("import mmalign; print(sorted(mmalign.get_catalog().datasets))", installed_extras_plugin,
               MMALIGN_PLUGINS="extra")
    assert out.returncode == 0, out.stderr
    assert "MMALIGN_PLUGINS names ['extra'], but no installed plugin has that entry-point name" in out.stderr
    assert "'extras'" in out.stderr and "'dupaudio'" in out.stderr


def test_plugin_module_without_hook_implementations_warns(installed_extras_plugin):
    out = _run("import mmalign; mmalign.get_catalog()", installed_extras_plugin, MMALIGN_PLUGINS="nohooks")
    assert out.returncode == 0, out.stderr
    assert "plugin 'nohooks' (distribution mmalign-extras-plugin 1.2.0): mmalign_extras_plugin.empty implements no" \
           " mmalign hook" in out.stderr


def test_duplicate_key_names_the_distributions_and_plugins_command_lists_the_conflict(
        installed_toy_plugin, installed_extras_plugin):
    both = os.pathsep.join([str(installed_toy_plugin), str(installed_extras_plugin)])
    strict = _run("import mmalign; mmalign.Aligner(['toy_audio', 'attributes'])", both, MMALIGN_PLUGINS="toy,dupaudio")
    assert strict.returncode != 0
    assert "modality key 'toy_audio' is registered twice: by plugin " in strict.stderr
    assert "plugin 'toy' (distribution mmalign-toy-plugin 0.3.1)" in strict.stderr
    assert "plugin 'dupaudio' (distribution mmalign-extras-plugin 1.2.0)" in strict.stderr
    assert "pip uninstall mmalign-extras-plugin" in strict.stderr and "pip uninstall mmalign-toy-plugin" in strict.stderr
    listed = _cli_run(both, "plugins", MMALIGN_PLUGINS="toy,dupaudio")
    assert listed.returncode == 0, listed.stderr
    assert "toy 0.3.1" in listed.stdout and "dupaudio 1.2.0" in listed.stdout
    assert listed.stdout.count("CONFLICT: modality key 'toy_audio' is registered twice") == 2
    train = _cli_run(both, "train", "missing.toml", "--out", "x", MMALIGN_PLUGINS="toy,dupaudio")
    assert train.returncode == 2 and "Traceback" not in train.stderr


class _Broken:
    @staticmethod
    @mmalign.hookimpl
    def register_modalities(register):
        raise KeyError("oops")


def test_plugin_hook_that_raises_is_named():
    pm, infos = _manager_with(("broken_plugin", _Broken))
    with pytest.raises(PluginError, match=r"plugin .broken_plugin. \(version 1.0\): its register_modalities hook failed"):
        plugins.build_catalog(pm, infos)
