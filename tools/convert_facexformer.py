#!/usr/bin/env python3
"""tools/convert_facexformer.py - FaceXFormer's released checkpoint -> an emotune face network.

    python3 tools/convert_facexformer.py ckpts/model.pt OUT_DIR [--image-size 224]
        [--decoder-heads 8] [--window 7]

Reads the PyTorch checkpoint with torch.load(weights_only=True) (tensors and plain
containers only: no code from the file runs), takes its "state_dict_backbone" (or the
checkpoint itself when it is already a flat state dict), drops a leading "module." and
writes OUT_DIR/model.safetensors (float32, FaceXFormer's names unchanged) and
OUT_DIR/config.json (emotune's face network config, train/models/face_net.h): the shapes
are read from the tensors (embed_dim, depths, num_heads, window_size, mlp_ratio,
fuse_dim, decoder depth and MLP width); what the weights do not show comes from the
options (image size 224, 8 decoder heads: FaceXFormer's), and image_mean / image_std are
ImageNet's (FaceXFormer's inference transform). emotune itself never reads
pickle; load OUT_DIR with model.face_net_path.

Needs torch and safetensors (pip install torch safetensors).
"""
import argparse
import json
import os
import re
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out_dir")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--patch-size", type=int, default=4)
    ap.add_argument("--decoder-heads", type=int, default=8)
    ap.add_argument("--attention-downsample-rate", type=int, default=2)
    args = ap.parse_args()

    import torch
    from safetensors.torch import save_file

    ck = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    sd = ck.get("state_dict_backbone", ck) if isinstance(ck, dict) else None
    if not isinstance(sd, dict) or not sd:
        sys.exit("%s: no state dict (expected the key 'state_dict_backbone' or a flat dict)"
                 % args.checkpoint)
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()
          if torch.is_tensor(v)}

    def need(name):
        if name not in sd:
            sys.exit("%s: tensor %s is missing: not a FaceXFormer checkpoint" % (args.checkpoint, name))
        return sd[name]

    pw = need("backbone.0.0.0.weight")  # [E, C, p, p]
    embed, chans = int(pw.shape[0]), int(pw.shape[1])
    # stage i's blocks live at backbone.0.<1 + 2 i>.<j>
    depths, heads, window, ratio = [], [], None, None
    for i in range(8):
        blocks = {int(m.group(1)) for k in sd
                  for m in [re.match(r"backbone\.0\.%d\.(\d+)\.norm1\.weight$" % (1 + 2 * i), k)]
                  if m}
        if not blocks:
            break
        depths.append(max(blocks) + 1)
        t = need("backbone.0.%d.0.attn.relative_position_bias_table" % (1 + 2 * i))
        heads.append(int(t.shape[1]))
        w = int(round((int(t.shape[0]) ** 0.5 + 1) / 2))
        if (2 * w - 1) ** 2 != int(t.shape[0]) or (window is not None and w != window):
            sys.exit("%s: relative position tables of stage %d do not fit one window size"
                     % (args.checkpoint, i))
        window = w
        fc1 = need("backbone.0.%d.0.mlp.0.weight" % (1 + 2 * i))
        ratio = int(fc1.shape[0]) / (embed << i)
    if not depths:
        sys.exit("%s: no Swin stage found under backbone.0." % args.checkpoint)
    fuse = int(need("linear_fuse.weight").shape[0])
    layers = {int(m.group(1)) for k in sd
              for m in [re.match(r"face_decoder\.transformer\.layers\.(\d+)\.", k)] if m}
    mlp = int(need("face_decoder.transformer.layers.0.mlp.lin1.weight").shape[0])
    masks = int(need("face_decoder.mask_tokens.weight").shape[0])
    cfg = {"model_type": "facexformer", "image_size": args.image_size,
           "patch_size": args.patch_size, "num_channels": chans, "embed_dim": embed,
           "depths": depths, "num_heads": heads, "window_size": window, "mlp_ratio": ratio,
           "layer_norm_eps": 1e-5, "fuse_dim": fuse, "decoder_depth": max(layers) + 1,
           "decoder_heads": args.decoder_heads,
           "decoder_mlp_dim": mlp, "attention_downsample_rate": args.attention_downsample_rate,
           "num_mask_tokens": masks,
           # FaceXFormer's inference transform: ImageNet normalisation (emotune converts its
           # CLIP-normalised pixels to it before the network runs)
           "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    out = {}
    for k, v in sd.items():
        v = v.detach().contiguous()
        out[k] = v.to(torch.int32) if k.endswith("relative_position_index") else v.float()
    os.makedirs(args.out_dir, exist_ok=True)
    save_file(out, os.path.join(args.out_dir, "model.safetensors"),
              metadata={"source": os.path.basename(args.checkpoint),
                        "converter": "tools/convert_facexformer.py"})
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("%s: %d tensors -> %s (%s)" % (args.checkpoint, len(out), args.out_dir,
                                         json.dumps(cfg)))


if __name__ == "__main__":
    main()
