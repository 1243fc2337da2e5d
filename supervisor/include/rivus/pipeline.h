// Pipelines built in code (`source >> stage >> sink`, run(), Report): rivus/supervisor/pipeline.h.
#pragma once

#include "rivus/supervisor/pipeline.h"
