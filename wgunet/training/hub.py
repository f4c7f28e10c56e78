"""Share an exported model: push its folder (weights, scheduler, model card) to the Hugging Face Hub.

    python -m wgunet.training.hub runs/default/model --repo-id NAME/wgunet-student [--private]

Training does the same at its end with ``push_to_hub=true hub_model_id=NAME/...``. The local folder is never
changed; a failed push (no network, no token, no permission) is one line that says how to retry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wgunet.common.cli import run_cli
from wgunet.common.errors import UserError


class HubError(UserError):
    """A push that did not go through; the message names the cause and the command to retry."""


def push_export(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload an export folder (model_index.json, unet/, scheduler/, README.md) to ``repo_id``; returns its URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise HubError(f"{str(folder)!r} is not an exported model folder (model_index.json): pass runs/NAME/model")
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="wgunet export")
    except Exception as error:  # network, auth and Hub errors come in many types; the local export is untouched
        raise HubError(f"could not push {str(folder)!r} to {repo_id!r} ({type(error).__name__}: {error}); the local "
                       f"export is kept: log in (huggingface-cli login) and run `python -m wgunet.training.hub {folder} "
                       f"--repo-id {repo_id}`") from None
    return f"https://huggingface.co/{repo_id}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="an exported model folder, e.g. runs/default/model")
    parser.add_argument("--repo-id", required=True, help="the Hub repository, NAME/MODEL (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    args = parser.parse_args()
    return run_cli(lambda: print(f"pushed: {push_export(args.folder, args.repo_id, args.private)}"))


if __name__ == "__main__":
    sys.exit(main())
