"""Packaging beyond pyproject.toml: which packages and data files go into the wheel.

Nothing is listed by hand. Every package under ``mmalign/`` is found, and the two top-level
folders install under names that cannot collide with other distributions: ``plugins/`` as
``mmalign_plugins`` (with its subpackages) and ``registry/`` as ``mmalign_registry`` (every data
file in it: recipes, cards, references, shipped data). ``tests/test_packaging.py`` builds the
wheel and compares its files with the repository's.
"""

from setuptools import find_packages, setup

#: installed name -> folder in the repository
RENAMED = {"mmalign_plugins": "plugins", "mmalign_registry": "registry"}


def packages() -> list[str]:
    found = find_packages(include=["mmalign", "mmalign.*"])
    for name, folder in RENAMED.items():
        found += [name, *(f"{name}.{sub}" for sub in find_packages(folder))]
    return found


setup(
    packages=packages(),
    package_dir={"": ".", **RENAMED},
    package_data={"mmalign": ["py.typed"], "mmalign_registry": ["**/*"]},
    exclude_package_data={"": ["*.pyc", "__pycache__/*", "**/__pycache__/*"]},
    include_package_data=False,
)
