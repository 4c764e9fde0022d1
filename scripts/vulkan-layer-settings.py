"""Guard llama.cpp's use of VK_EXT_layer_settings for Vulkan headers older than 1.3.272.

Applied by scripts/build-llama-vulkan.sh to
vendor/llama.cpp/ggml/src/ggml-vulkan/ggml-vulkan.cpp of the llama-cpp-python sdist, only
when /usr/include/vulkan/vulkan_core.h says VK_HEADER_VERSION < 272 (Debian 12 and Raspberry
Pi OS Bookworm ship 239). ggml_vk_instance_init() builds a vk::LayerSettingEXT list for the
validation layer (GGML_VK_VALIDATE) without the VK_HEADER_VERSION guard the file's other
version-dependent blocks have; with older headers the list and its create-info are compiled
out and the instance is created without them. Exit status 1 if the code is not as expected.
"""

import re
import sys
from pathlib import Path

START = "    std::vector<vk::LayerSettingEXT> settings = {"
END = re.compile(
    r"    vk::InstanceCreateInfo instance_create_info\("
    r"(vk::InstanceCreateFlags\{\}, &app_info, layers, extensions), &layer_setting_info\);\n"
)
GUARD = "#if VK_HEADER_VERSION >= 272  // qwen-assistant: VK_EXT_layer_settings\n"


def patch(text: str) -> str | None:
    """The guarded source, or None when it is not the code this patch knows."""
    if text.count(START) != 1 or len(END.findall(text)) != 1 or GUARD in text:
        return None
    text = text.replace(START, GUARD + START)
    return END.sub(
        lambda m: (
            m.group(0)
            + "#else\n    vk::InstanceCreateInfo instance_create_info("
            + m.group(1)
            + ");\n#endif\n"
        ),
        text,
    )


def main() -> int:
    path = Path(sys.argv[1])
    patched = patch(path.read_text(encoding="utf-8"))
    if patched is None:
        return 1
    path.write_text(patched, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
