"""Transformer, speech and sequence families of the model corpus, in plain torch.

Transformers are built from a configuration the way Hugging Face writes
them (separate q/k/v projections, additive masks, HF's tanh GELU spelled out,
RMSNorm as x * rsqrt(mean(x^2) + eps) * w); decoders come as one decode step
with the KV cache as inputs.  Builders return (module, example inputs, input
names, output names); `tools/model_corpus.py` exports them.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

FAMILIES: dict = {}


def family(fn):
    FAMILIES[fn.__name__] = fn
    return fn


def ids(length: int, vocab: int):
    return torch.randint(0, vocab, (1, length))


def gelu_tanh(x):
    """HF's gelu_new, written out as it exports (Pow, Tanh, Mul)."""
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))
    return 0.5 * x * (1.0 + torch.tanh(inner))


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(1 + 0.1 * torch.randn(dim)), eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def split_heads(x, heads: int):
    b, s, d = x.shape
    return x.view(b, s, heads, d // heads).transpose(1, 2)


def merge_heads(x):
    b, h, s, hd = x.shape
    return x.transpose(1, 2).reshape(b, s, h * hd)


def additive_mask(mask):
    """HF's extended attention mask: 0 where kept, the dtype's minimum where padded."""
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, bias: bool = True, scale: bool = True):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=bias) for _ in range(4))
        self.heads, self.scale = heads, (dim // heads) ** -0.5 if scale else 1.0

    def forward(self, x, bias=None):
        q, k, v = (split_heads(p(x), self.heads) for p in (self.q, self.k, self.v))
        scores = q @ k.transpose(-1, -2) * self.scale
        if bias is not None:
            scores = scores + bias
        return self.o(merge_heads(scores.softmax(-1) @ v))


class EncoderLayer(nn.Module):
    """Post-norm (BERT) or pre-norm (ViT, CLIP, Whisper) transformer layer."""

    def __init__(self, dim, heads, ff, act=F.gelu, pre_norm=True, eps=1e-5):
        super().__init__()
        self.att, self.act, self.pre = SelfAttention(dim, heads), act, pre_norm
        self.ln1, self.ln2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.fc1, self.fc2 = nn.Linear(dim, ff), nn.Linear(ff, dim)

    def forward(self, x, bias=None):
        if self.pre:
            x = x + self.att(self.ln1(x), bias)
            return x + self.fc2(self.act(self.fc1(self.ln2(x))))
        x = self.ln1(x + self.att(x, bias))
        return self.ln2(x + self.fc2(self.act(self.fc1(x))))


class Bert(nn.Module):
    def __init__(self, vocab=30522, dim=768, heads=12, layers=4, positions=512):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(positions, dim)
        self.token_type = nn.Embedding(2, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, 4 * dim, pre_norm=False, eps=1e-12)
                                     for _ in range(layers)])
        self.pooler = nn.Linear(dim, dim)

    def forward(self, input_ids, attention_mask, token_type_ids):
        pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.norm(self.tok(input_ids) + self.pos(pos) + self.token_type(token_type_ids))
        bias = additive_mask(attention_mask)
        for layer in self.layers:
            x = layer(x, bias)
        return x, torch.tanh(self.pooler(x[:, 0]))


@family
def bert_base():
    mask = torch.ones(1, 64, dtype=torch.int64)
    mask[0, 50:] = 0
    types = torch.zeros(1, 64, dtype=torch.int64)
    types[0, 30:] = 1
    return (Bert(), (ids(64, 30522), mask, types),
            ["input_ids", "attention_mask", "token_type_ids"],
            ["last_hidden_state", "pooler_output"])


class Gpt2Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.c_attn, self.c_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc, self.proj = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.heads = heads

    def forward(self, x, bias, past_k=None, past_v=None):
        qkv = self.c_attn(self.ln1(x)).split(x.shape[-1], 2)
        q, k, v = (split_heads(t, self.heads) for t in qkv)
        if past_k is not None:
            k, v = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
        x = x + self.c_proj(merge_heads(scores.softmax(-1) @ v))
        return x + self.proj(gelu_tanh(self.fc(self.ln2(x)))), k, v


class Gpt2(nn.Module):
    def __init__(self, vocab=8192, dim=384, heads=6, layers=4, positions=1024):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(positions, dim)
        self.blocks = nn.ModuleList([Gpt2Block(dim, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)
        causal = torch.tril(torch.ones(positions, positions, dtype=torch.bool))
        self.register_buffer("causal", causal)

    def forward(self, input_ids, attention_mask, *past):
        s, past_len = input_ids.shape[1], past[0].shape[2] if past else 0
        total = past_len + s
        x = self.wte(input_ids) + self.wpe(torch.arange(past_len, total).unsqueeze(0))
        causal = self.causal[None, None, past_len:total, :total]
        keep = causal & attention_mask[:, None, None, :].bool()
        bias = torch.where(keep, torch.tensor(0.0), torch.tensor(torch.finfo(torch.float32).min))
        presents = []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, bias, *past[2 * i:2 * i + 2])
            presents += [k, v]
        return (self.ln_f(x) @ self.wte.weight.t(), *presents)


@family
def gpt2():
    return Gpt2(), (ids(64, 8192), torch.ones(1, 64, dtype=torch.int64)), \
        ["input_ids", "attention_mask"], ["logits"] + present_names(4)


def present_names(layers: int) -> list:
    return [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def cache_inputs(layers: int, heads: int, past: int, head_dim: int) -> tuple:
    tensors = tuple(torch.randn(1, heads, past, head_dim) for _ in range(2 * layers))
    names = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return tensors, names


@family
def gpt2_decode():
    past, names = cache_inputs(4, 6, 63, 64)
    inputs = (ids(1, 8192), torch.ones(1, 64, dtype=torch.int64)) + past
    return Gpt2(), inputs, ["input_ids", "attention_mask"] + names, \
        ["logits"] + present_names(4)


class T5Encoder(nn.Module):
    """T5 v1.0 encoder: RMSNorm, unscaled attention, bucketed relative position bias."""

    def __init__(self, vocab=32128, dim=512, heads=8, ff=2048, layers=4, buckets=32, distance=128):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rel = nn.Embedding(buckets, heads)
        self.buckets, self.distance = buckets, distance
        self.layers = nn.ModuleList([nn.ModuleDict({
            "ln1": RMSNorm(dim), "att": SelfAttention(dim, heads, bias=False, scale=False),
            "ln2": RMSNorm(dim), "wi": nn.Linear(dim, ff, bias=False),
            "wo": nn.Linear(ff, dim, bias=False)})
            for _ in range(layers)])
        self.norm = RMSNorm(dim)

    def position_bias(self, s: int):
        rel = torch.arange(s)[None, :] - torch.arange(s)[:, None]
        half = self.buckets // 2
        bucket = (rel > 0).long() * half
        rel = rel.abs()
        exact = half // 2
        large = exact + (torch.log(rel.float() / exact) / math.log(self.distance / exact)
                         * (half - exact)).long()
        large = torch.min(large, torch.full_like(large, half - 1))
        bucket = bucket + torch.where(rel < exact, rel, large)
        return self.rel(bucket).permute(2, 0, 1).unsqueeze(0)

    def forward(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        bias = self.position_bias(input_ids.shape[1]) + additive_mask(attention_mask)
        for layer in self.layers:
            x = x + layer["att"](layer["ln1"](x), bias)
            x = x + layer["wo"](F.relu(layer["wi"](layer["ln2"](x))))
        return self.norm(x)


@family
def t5_encoder():
    mask = torch.ones(1, 64, dtype=torch.int64)
    mask[0, 56:] = 0
    return (T5Encoder(), (ids(64, 32128), mask), ["input_ids", "attention_mask"],
            ["last_hidden_state"])


class ViT(nn.Module):
    def __init__(self, size=224, patch=16, dim=384, heads=6, layers=6, classes=1000):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, 4 * dim, eps=1e-6)
                                     for _ in range(layers)])
        self.norm, self.head = nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x)[:, 0])


@family
def vit_small():
    return ViT(), (torch.randn(1, 3, 224, 224),), ["pixel_values"], ["logits"]


class ClipText(nn.Module):
    def __init__(self, vocab=49408, dim=512, heads=8, layers=4, positions=77):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(positions, dim)
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, 4 * dim, act=quick_gelu)
                                     for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, input_ids):
        s = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(s).unsqueeze(0))
        causal = torch.full((s, s), torch.finfo(torch.float32).min).triu(1)[None, None]
        for layer in self.layers:
            x = layer(x, causal)
        x = self.norm(x)
        return x, x[torch.arange(x.shape[0]), input_ids.argmax(-1)]


@family
def clip_text():
    tokens = ids(77, 49000)
    tokens[0, 20] = 49407                                 # the end-of-text token, pooled
    return ClipText(), (tokens,), ["input_ids"], ["last_hidden_state", "text_embeds"]


class LlamaLayer(nn.Module):
    def __init__(self, dim, heads, kv_heads, ff):
        super().__init__()
        hd = dim // heads
        self.q, self.o = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, kv_heads * hd, bias=False)
        self.v = nn.Linear(dim, kv_heads * hd, bias=False)
        self.gate, self.up = nn.Linear(dim, ff, bias=False), nn.Linear(dim, ff, bias=False)
        self.down = nn.Linear(ff, dim, bias=False)
        self.ln1, self.ln2 = RMSNorm(dim), RMSNorm(dim)
        self.heads, self.kv_heads = heads, kv_heads

    @staticmethod
    def rotate(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

    def forward(self, x, cos, sin, bias, past_k, past_v):
        h = self.ln1(x)
        q = self.rotate(split_heads(self.q(h), self.heads), cos, sin)
        k = self.rotate(split_heads(self.k(h), self.kv_heads), cos, sin)
        v = split_heads(self.v(h), self.kv_heads)
        k, v = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
        b, kvh, s, hd = k.shape
        rep = self.heads // kvh
        kr = k[:, :, None].expand(b, kvh, rep, s, hd).reshape(b, self.heads, s, hd)
        vr = v[:, :, None].expand(b, kvh, rep, s, hd).reshape(b, self.heads, s, hd)
        att = ((q @ kr.transpose(-1, -2)) / math.sqrt(hd) + bias).softmax(-1) @ vr
        x = x + self.o(merge_heads(att))
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h)), k, v


class Llama(nn.Module):
    def __init__(self, vocab=8192, dim=512, heads=8, kv_heads=2, ff=1408, layers=4, theta=10000.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList([LlamaLayer(dim, heads, kv_heads, ff) for _ in range(layers)])
        self.norm, self.lm_head = RMSNorm(dim), nn.Linear(dim, vocab, bias=False)
        hd = dim // heads
        self.register_buffer("inv_freq", 1.0 / theta ** (torch.arange(0, hd, 2).float() / hd))

    def forward(self, input_ids, attention_mask, position_ids, *past):
        freqs = position_ids[:, :, None].float() * self.inv_freq
        emb = torch.cat([freqs, freqs], -1)[:, None]
        cos, sin = emb.cos(), emb.sin()
        bias = additive_mask(attention_mask)
        x, presents = self.embed(input_ids), []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, cos, sin, bias, past[2 * i], past[2 * i + 1])
            presents += [k, v]
        return (self.lm_head(self.norm(x)), *presents)


@family
def llama_decode():
    past, names = cache_inputs(4, 2, 127, 64)
    inputs = (ids(1, 8192), torch.ones(1, 128, dtype=torch.int64), torch.tensor([[127]])) + past
    return Llama(), inputs, ["input_ids", "attention_mask", "position_ids"] + names, \
        ["logits"] + present_names(4)


class WhisperEncoder(nn.Module):
    """Whisper-tiny's encoder: two 1-D convs with GELU, sinusoidal positions, pre-norm layers."""

    def __init__(self, mels=80, frames=500, dim=384, heads=6, layers=4):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv1d(mels, dim, 3, padding=1), nn.Conv1d(dim, dim, 3, 2, 1)
        steps = torch.exp(-math.log(10000) / (dim // 2 - 1) * torch.arange(dim // 2))
        t = torch.arange(frames // 2)[:, None] * steps[None]
        self.register_buffer("pos", torch.cat([t.sin(), t.cos()], 1))
        self.layers = nn.ModuleList([EncoderLayer(dim, heads, 4 * dim) for _ in range(layers)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, features):
        x = F.gelu(self.conv2(F.gelu(self.conv1(features)))).transpose(1, 2) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


@family
def whisper_encoder():
    return WhisperEncoder(), (torch.randn(1, 80, 500),), ["input_features"], ["last_hidden_state"]


class LstmVad(nn.Module):
    """Voice activity: a fixed-weight STFT as a strided 1-D conv, log magnitude, LSTM."""

    def __init__(self, window=256, hop=128, hidden=64):
        super().__init__()
        bins = window // 2 + 1
        n = torch.arange(window).float()
        k = torch.arange(bins).float()[:, None]
        hann = torch.hann_window(window)
        angle = 2 * math.pi * k * n / window
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)])
        self.stft = nn.Conv1d(1, 2 * bins, window, hop, bias=False)
        self.stft.weight.data = (basis * hann)[:, None]
        self.bins = bins
        self.proj = nn.Conv1d(bins, hidden, 3, padding=1)
        self.lstm = nn.LSTM(hidden, hidden, 2, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, audio):
        re, im = self.stft(audio.unsqueeze(1)).split(self.bins, 1)
        mag = torch.log1p(torch.sqrt(re * re + im * im + 1e-9))
        y, _ = self.lstm(F.relu(self.proj(mag)).transpose(1, 2))
        return torch.sigmoid(self.out(y)).squeeze(-1)


@family
def lstm_vad():
    return LstmVad(), (torch.randn(1, 16000) * 0.1,), ["audio"], ["speech_prob"]


class TcnVad(nn.Module):
    """Temporal convolutional network: causal dilated 1-D conv residual blocks."""

    def __init__(self, features=40, channels=64, dilations=(1, 2, 4, 8, 1, 2, 4, 8)):
        super().__init__()
        self.inp = nn.Conv1d(features, channels, 1)
        self.blocks = nn.ModuleList([
            nn.Sequential(nn.Conv1d(channels, channels, 3, dilation=d, bias=False),
                          nn.BatchNorm1d(channels), nn.ReLU(), nn.Conv1d(channels, channels, 1))
            for d in dilations])
        self.dilations = dilations
        self.out = nn.Conv1d(channels, 1, 1)

    def forward(self, feats):
        x = self.inp(feats)
        for block, d in zip(self.blocks, self.dilations):
            x = F.relu(x + block(F.pad(x, (2 * d, 0))))
        return torch.sigmoid(self.out(x)).squeeze(1)


@family
def tcn_vad():
    return TcnVad(), (torch.randn(1, 40, 300),), ["features"], ["speech_prob"]


class ByteClassifier(nn.Module):
    """File type from raw bytes (256 = padding): embedding, strided 1-D convs, pooling."""

    def __init__(self, classes=200, dim=64):
        super().__init__()
        self.embed = nn.Embedding(257, dim)
        self.convs = nn.Sequential(nn.Conv1d(dim, 128, 8, 4), nn.GELU(), nn.MaxPool1d(2),
                                   nn.Conv1d(128, 192, 5, 2), nn.GELU(),
                                   nn.Conv1d(192, 256, 3), nn.GELU())
        self.norm = nn.LayerNorm(512)
        self.out = nn.Linear(512, classes)

    def forward(self, data):
        x = self.convs(self.embed(data).transpose(1, 2))
        pooled = torch.cat([x.amax(-1), x.mean(-1)], 1)
        return self.out(self.norm(pooled)).softmax(-1)


@family
def byte_classifier():
    data = torch.randint(0, 257, (1, 2048))
    data[0, 1500:] = 256
    return ByteClassifier(), (data,), ["bytes"], ["probabilities"]


class GruTagger(nn.Module):
    def __init__(self, vocab=5000, dim=128, hidden=128, tags=17):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.gru = nn.GRU(dim, hidden, 1, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, tags)

    def forward(self, tokens):
        y, _ = self.gru(self.embed(tokens))
        return F.log_softmax(self.out(y), -1)


@family
def gru_tagger():
    return GruTagger(), (ids(64, 5000),), ["tokens"], ["tag_scores"]


class Crnn(nn.Module):
    """OCR line recogniser: VGG-style CNN to a height-1 sequence, two BiLSTMs, CTC scores."""

    def __init__(self, classes=37, hidden=128):
        super().__init__()
        def cbr(a, b, k=3, p=1, bn=False):
            return [nn.Conv2d(a, b, k, 1, p)] + ([nn.BatchNorm2d(b)] if bn else []) + [nn.ReLU()]
        self.cnn = nn.Sequential(*cbr(1, 32), nn.MaxPool2d(2), *cbr(32, 64), nn.MaxPool2d(2),
                                 *cbr(64, 128, bn=True), *cbr(128, 128), nn.MaxPool2d((2, 1)),
                                 *cbr(128, 256, bn=True), *cbr(256, 256), nn.MaxPool2d((2, 1)),
                                 *cbr(256, 256, 2, 0, bn=True))
        self.rnn1 = nn.LSTM(256, hidden, bidirectional=True)
        self.rnn2 = nn.LSTM(2 * hidden, hidden, bidirectional=True)
        self.out = nn.Linear(2 * hidden, classes)

    def forward(self, line):
        x = self.cnn(line).squeeze(2).permute(2, 0, 1)          # time x batch x channels
        x, _ = self.rnn1(x)
        x, _ = self.rnn2(x)
        return F.log_softmax(self.out(x), -1)


@family
def crnn_ocr():
    return Crnn(), (torch.randn(1, 1, 32, 128),), ["line"], ["log_probs"]
