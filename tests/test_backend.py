"""Where the model runs: the CPU, or Vulkan on a named device, and one honest warning when a
requested GPU cannot be used."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import load_config
from assistant.errors import ConfigError
from assistant.llm.backend import VISIBLE, Device, choose_backend, probe

CPU = Device("CPU", "AMD EPYC", "CPU")
LAVAPIPE = Device("Vulkan0", "llvmpipe (LLVM 15.0.6, 256 bits)", "IGPU")


def test_no_gpu_layers_is_the_cpu_without_a_probe() -> None:
    backend = choose_backend(0, "", probed="never looked at")
    assert (backend.name, backend.gpu_layers, backend.fallback) == ("CPU", 0, "")


def test_a_vulkan_device_named_in_the_config_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VISIBLE, "")  # recorded, so the test's own setting is undone after it
    monkeypatch.delenv(VISIBLE)
    backend = choose_backend(99, "0", probed=[CPU, LAVAPIPE])
    assert backend.name == "Vulkan" and backend.gpu_layers == 99 and not backend.fallback
    assert backend.describe() == (
        "Vulkan: Vulkan0 llvmpipe (LLVM 15.0.6, 256 bits), 99 layers offloaded"
    )
    import os

    assert os.environ[VISIBLE] == "0"  # llama.cpp in this process sees what the probe saw


def test_no_gpu_device_falls_back_to_the_cpu_with_the_reason() -> None:
    backend = choose_backend(99, "", probed=[CPU])
    assert backend.name == "CPU" and backend.gpu_layers == 0
    assert backend.fallback.startswith("llm.gpu_layers = 99, but this llama.cpp has no GPU")
    assert backend.fallback.endswith("; running on the CPU")
    failed = choose_backend(99, "0", probed="listing the devices failed (ggml_vulkan: Invalid)")
    assert failed.name == "CPU" and failed.fallback == (
        "listing the devices failed (ggml_vulkan: Invalid); running on the CPU"
    )


def test_the_cpu_build_really_probed_says_it_has_no_gpu_backend() -> None:
    devices = probe("")
    assert isinstance(devices, list) and devices and devices[0].kind == "CPU"
    if any(d.kind in ("GPU", "IGPU") for d in devices):
        pytest.skip("this llama.cpp build has a GPU backend")
    assert "no GPU backend" in choose_backend(99, "").fallback


def test_vulkan_devices_must_be_indices(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[llm]\nvulkan_devices = "lavapipe"\n')
    with pytest.raises(ConfigError, match=r"llm.vulkan_devices: must be \"\" or Vulkan device"):
        load_config(config)
    config.write_text('[llm]\nvulkan_devices = "0,1"\n')
    assert load_config(config).llm.vulkan_devices == "0,1"


def test_the_vulkan_header_patch_guards_the_layer_settings_once() -> None:
    import importlib.util

    path = Path(__file__).parent.parent / "scripts" / "vulkan-layer-settings.py"
    spec = importlib.util.spec_from_file_location("vulkan_layer_settings", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = (
        "    VkBool32 enable_best_practice = layer_settings;\n"
        "    std::vector<vk::LayerSettingEXT> settings = {\n"
        "        { ... },\n"
        "    };\n"
        "    vk::LayerSettingsCreateInfoEXT layer_setting_info(settings);\n"
        "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, "
        "layers, extensions, &layer_setting_info);\n"
        "#ifdef __APPLE__\n"
    )
    patched = module.patch(source)
    assert patched is not None
    lines = patched.splitlines()
    assert lines[1].startswith("#if VK_HEADER_VERSION >= 272")
    assert lines[-4:] == [
        "#else",
        "    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, "
        "layers, extensions);",
        "#endif",
        "#ifdef __APPLE__",
    ]
    assert module.patch(patched) is None  # never twice
    assert module.patch("other code\n") is None  # not the code it knows: the build says so
