"""``precision.linear_matmuls``: the linear layers multiply in bfloat16 while it is active,
the rest of the model and the gradients stay float32, and every layer comes back."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from macm_core.precision import bfloat16_matmul_is_native, linear_matmuls, matmul_dtype


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 8, bias=False))


def by_hand(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The same forward written out: each product from bfloat16 operands, back to float32."""
    first, act, norm, last = model
    h = F.linear(x.bfloat16(), first.weight.bfloat16()).float() + first.bias
    return F.linear(norm(act(h)).bfloat16(), last.weight.bfloat16()).float()


def test_products_are_taken_in_bfloat16_and_the_output_keeps_its_dtype():
    model, x = mlp(), torch.randn(5, 16)
    plain = model(x)
    with linear_matmuls(model, "bfloat16") as changed:
        low = model(x)
    assert changed == 2 and low.dtype == torch.float32
    torch.testing.assert_close(low, by_hand(model, x), rtol=0, atol=0)
    assert not torch.equal(low, plain)
    torch.testing.assert_close(low, plain, rtol=0.05, atol=0.05)
    assert torch.equal(model(x), plain)  # restored


def test_gradients_reach_the_float32_weights_close_to_the_float32_gradients():
    grads = {}
    for dtype in (None, "bfloat16"):
        model, x = mlp(), torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
        with linear_matmuls(model, dtype):
            model(x).square().mean().backward()
        grads[dtype] = {n: p.grad for n, p in model.named_parameters()}
    for name, grad in grads["bfloat16"].items():
        assert grad.dtype == torch.float32
        reference = grads[None][name]
        assert (grad - reference).norm() <= 0.05 * reference.norm(), name


def test_none_changes_nothing_and_an_instance_forward_comes_back_after_an_error():
    model, x = mlp(), torch.randn(3, 16)
    with linear_matmuls(model, None) as changed:
        assert changed == 0 and not any("forward" in m.__dict__ for m in model.modules())
    hooked = model[0]
    own = hooked.forward  # the class's bound forward
    hooked.forward = lambda inp: own(inp) * 2  # an instance-level forward, as offloading hooks set
    with pytest.raises(RuntimeError, match="inside"):
        with linear_matmuls(model, torch.bfloat16):
            bf16 = F.linear(x.bfloat16(), hooked.weight.bfloat16()).float() + hooked.bias
            torch.testing.assert_close(hooked(x), bf16, rtol=0, atol=0)  # the bfloat16 forward, while active
            raise RuntimeError("inside")
    torch.testing.assert_close(hooked(x), own(x) * 2)  # the instance forward is back
    assert "forward" not in model[3].__dict__  # the plain one is the class's again


def test_bad_dtype_names_the_choices():
    assert matmul_dtype(None) is None and matmul_dtype("bfloat16") is torch.bfloat16
    with pytest.raises(ValueError, match="bfloat16, float16 or None"):
        matmul_dtype("fp8")
    with pytest.raises(ValueError, match="bfloat16, float16 or None"):
        with linear_matmuls(mlp(), "half"):
            pass


def test_native_bfloat16_is_read_from_the_cpu_flags():
    flags = open("/proc/cpuinfo").read().split()
    assert bfloat16_matmul_is_native() == ("avx512_bf16" in flags or "amx_bf16" in flags)
