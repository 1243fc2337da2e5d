// Everything a program that embeds Rivus usually needs, in one include (link rivus::cli):
//   the Stage API and registry (RIVUS_REGISTER_STAGE), records, parameters and specs;
//   function stages and codecs (rivus::stage(fn), rivus::Codec<T>);
//   pipelines built in code and their reports (rivus::range(...) >> ... , run());
//   the `rivus` command line as a function (rivus::cli_main) and plugin loading.
// External worker programs include rivus/worker/external.h instead; plugins need only
// rivus/runtime/stage.h (and function_stage.h for lambdas). Guide: docs/embedding.md.
#pragma once

#include "rivus/cli/cli.h"
#include "rivus/embed/pipeline.h"
#include "rivus/embed/plugin.h"
#include "rivus/inspect/report.h"
#include "rivus/runtime/codec.h"
#include "rivus/runtime/function_stage.h"
#include "rivus/runtime/params.h"
#include "rivus/runtime/record.h"
#include "rivus/runtime/spec.h"
#include "rivus/runtime/stage.h"
#include "rivus/supervisor/supervisor.h"
