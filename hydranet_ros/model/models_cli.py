"""hydranet models: the shipped models and the authors' official checkpoints; verified downloads."""
from tqdm import tqdm

from hydranet_ros.model import official
from hydranet_ros.model.catalog import SHIPPED_LICENCES, resolve_model_path
from hydranet_ros.model.model_file import load_model


def add_arguments(parser):
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the shipped models and the official checkpoints, with licence and outputs")
    fetch = actions.add_parser("download", help="fetch an official checkpoint, verify its git blob id, import it "
                                                "into the user cache (then use model_path official:NAME)")
    fetch.add_argument("name", choices=sorted(official.OFFICIAL))
    fetch.add_argument("--accept-licence", action="store_true", help="accept the weights' non-commercial licence")
    fetch.add_argument("--base-url", help=f"mirror of the authors' repository (default {official.DEFAULT_BASE_URL}, "
                                          f"or ${official.BASE_URL_VARIABLE})")


def run(args):
    if args.action == "download":
        bar = tqdm(unit="B", unit_scale=True, desc=f"downloading {args.name}")

        def progress(received, expected):
            bar.total = expected or None
            bar.update(received - bar.n)
        try:
            path = official.download(args.name, args.accept_licence, args.base_url, progress)
        finally:
            bar.close()
        print(f"verified (git blob {official.OFFICIAL[args.name].git_blob_sha1}) and imported: {path}")
        print(f"use it as model_path:=official:{args.name} or --model official:{args.name}")
        return
    print("shipped (in this package; each model's licence follows its training data):")
    for name, licence in SHIPPED_LICENCES.items():
        path = resolve_model_path(name)
        if path.is_file():
            _, spec = load_model(path)
            print(f"  {name:<28} {spec.label_space.name:<14} {', '.join(spec.tasks)}; licence: {licence}")
    print(f"official ({official.LICENCE}):")
    for checkpoint in official.OFFICIAL.values():
        cached = (official.models_dir() / f"{checkpoint.name}.pt").is_file()
        state = "downloaded" if cached else f"hydranet models download {checkpoint.name} --accept-licence"
        print(f"  official:{checkpoint.name:<19} {checkpoint.label_space:<14} {', '.join(checkpoint.tasks)}; "
              f"{checkpoint.trained_on}; {state}")
