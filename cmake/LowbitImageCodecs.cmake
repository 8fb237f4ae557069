# Finds the image codecs Kuat's converter links: libjpeg(-turbo), libpng, libwebp (+ webpdemux)
# and zlib. Found as plain libraries (no pkg-config at pip time). When any is missing, configuring
# stops at once with one message naming every missing library and the packages that provide it,
# instead of a compiler error halfway through the build (or a CMake error about one variable).
# Defines the targets JPEG::JPEG, PNG::PNG, ZLIB::ZLIB and the variables WEBP_INCLUDE_DIR,
# WEBP_LIBRARY, WEBPDEMUX_LIBRARY.
include_guard(GLOBAL)

function(_lowbit_codec_missing out what debian fedora)
  set(${out} "${${out}}\n  - ${what}: Debian/Ubuntu `${debian}`, Fedora/RHEL `${fedora}`" PARENT_SCOPE)
endfunction()

set(_missing "")
find_package(ZLIB QUIET)
if(NOT ZLIB_FOUND)
  _lowbit_codec_missing(_missing "zlib" "zlib1g-dev" "zlib-devel")
endif()
find_package(JPEG QUIET)
if(NOT JPEG_FOUND)
  _lowbit_codec_missing(_missing "libjpeg (JPEG)" "libjpeg-dev (libjpeg62-turbo-dev)" "libjpeg-turbo-devel")
endif()
find_package(PNG QUIET)
if(NOT PNG_FOUND)
  _lowbit_codec_missing(_missing "libpng (PNG)" "libpng-dev" "libpng-devel")
endif()
find_path(WEBP_INCLUDE_DIR webp/decode.h)
find_library(WEBP_LIBRARY NAMES webp)
find_library(WEBPDEMUX_LIBRARY NAMES webpdemux)  # animated WebP (first frame)
if(NOT WEBP_INCLUDE_DIR OR NOT WEBP_LIBRARY OR NOT WEBPDEMUX_LIBRARY)
  _lowbit_codec_missing(_missing "libwebp and libwebpdemux (WebP)" "libwebp-dev" "libwebp-devel")
endif()

if(_missing)
  message(FATAL_ERROR
    "lowbit: Kuat's image converter needs the development files of these libraries, not found:"
    "${_missing}\n"
    "Install them (on Debian/Ubuntu: `sudo apt-get install libjpeg-dev libpng-dev libwebp-dev zlib1g-dev`, "
    "or `bash scripts/install-deps.sh`), or point CMAKE_PREFIX_PATH at them, or build without image "
    "decoding with -DLOWBIT_IMAGE_CODECS=OFF (pip: --config-settings=cmake.define.LOWBIT_IMAGE_CODECS=OFF; "
    "kuat convert then reads IDX, CIFAR and numpy sources only). A prebuilt wheel (`make wheel`) bundles "
    "these libraries and needs none of them.")
endif()
