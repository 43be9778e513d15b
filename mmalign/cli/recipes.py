"""``mmalign recipes``: the shipped recipes with their loss families, sources and reference numbers."""

from __future__ import annotations

import argparse
import json

from ..hooks import hookimpl


@hookimpl
def register_commands(subparsers) -> None:
    p = subparsers.add_parser("recipes", help="list the recipes (--recipe NAME): loss families, sources, published numbers")
    p.add_argument("recipe", nargs="?", help="show one recipe (a name or a TOML file) in full")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_recipes)


def describe(recipe) -> dict:
    """What ``mmalign recipes`` shows of one recipe."""
    from ..recipes import load_references

    refs = load_references(recipe.references) if recipe.references else None
    return {
        "name": recipe.name, "source": recipe.source, "reparameterization": recipe.reparameterization,
        "latent_size": recipe.model.latent_size, "epochs": recipe.training.epochs,
        "loss_families": {family: ramp.model_dump(exclude_none=True) for family, ramp in recipe.training.warmup.items()},
        "references": None if refs is None else {
            "source": refs.source, "tolerance": refs.tolerance,
            "results": [r.model_dump(exclude_none=True) for r in refs.result],
        },
    }


def _weight(ramp: dict) -> str:
    if "start" not in ramp:
        return f"{ramp['factor']:g}"
    return f"0 -> {ramp['factor']:g} over epochs {ramp['start']:g}-{ramp['end']:g}"


def cmd_recipes(args: argparse.Namespace) -> int:
    from ..recipes import load_recipe, recipe_names

    recipes = [load_recipe(args.recipe)] if args.recipe else [load_recipe(n) for n in recipe_names()]
    rows = [describe(r) for r in recipes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['source']})")
        print(f"  {row['reparameterization']} sampling, latent size {row['latent_size']}, {row['epochs']} epochs")
        families = ", ".join(f"{f} {_weight(r)}" for f, r in row["loss_families"].items())
        print(f"  loss families (recon weighs 1 unless named): {families}")
        refs = row["references"]
        if refs is None:
            print("  published numbers: none")
            continue
        print(f"  published numbers ({refs['source']}; tolerance ±{refs['tolerance']:g}):")
        for r in refs["results"]:
            scores = "  ".join(f"{k} {r[k]:g}" for k in ("U", "S", "H", "top1") if k in r)
            print(f"    {r['dataset']} {r['setting']} {r['shots']}-shot {r['side_info']}: {scores}")
    return 0
